"""Serve the captioner on loopback: waitress when installed, else Werkzeug's threaded server.

``python -m maintenance_demo.serve --port 5000``
"""

from __future__ import annotations

import argparse


def serve(host: str, port: int, threads: int = 8) -> None:
    """Run the captioner until the process is told to stop."""
    from maintenance_demo.captioner import create_app

    app = create_app()
    try:
        import waitress
    except ImportError:  # waitress is a development extra; Werkzeug comes with Flask
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)
        return
    waitress.serve(app, host=host, port=port, threads=threads, ident="captioner")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    serve(args.host, args.port, args.threads)


if __name__ == "__main__":
    main()
