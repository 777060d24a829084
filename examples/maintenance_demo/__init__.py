"""``maintenance demo``: the captioner, two prefork workers and beat on the embedded default."""
