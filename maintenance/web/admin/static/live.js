// The live status stream (Server-Sent Events) with resumption, and the dashboard poll.

// Calls onStatus(status) for every status event and onState("live" | "reconnecting").
// EventSource resumes by itself with a Last-Event-ID header; when the server refused
// the stream (a non-200 answer closes it for good) we reopen it, passing the last
// version seen as `last_event_id`.
export function followStatus(url, onStatus, onState) {
  let lastId = null;
  let delay = 1000;
  let source = null;

  function open() {
    const target = lastId ? `${url}?last_event_id=${encodeURIComponent(lastId)}` : url;
    source = new EventSource(target);
    source.addEventListener("open", () => {
      delay = 1000;
      onState("live");
    });
    source.addEventListener("status", (event) => {
      if (event.lastEventId) lastId = event.lastEventId;
      let status;
      try {
        status = JSON.parse(event.data);
      } catch {
        return;
      }
      onStatus(status);
    });
    source.addEventListener("error", () => {
      onState("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      }
    });
  }

  open();
  return () => source && source.close();
}

// Fetch `url` now and every `periodMs`; `refresh()` asks for an early update.
export function poll(url, periodMs, onData, onError) {
  let timer = null;
  let running = false;

  async function tick() {
    clearTimeout(timer);
    if (running) return;
    running = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      onData(await response.json());
    } catch (error) {
      onError(error);
    } finally {
      running = false;
      timer = setTimeout(tick, periodMs);
    }
  }

  timer = setTimeout(tick, periodMs);
  return { refresh: tick };
}
