// The service worker of /live/: shows a system notification for each Web Push.
// The payload is small ({id, seq, kind, title}); the page fetches the rest.
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (_) { data = {}; }
  const title = data.title || "ECE";
  event.waitUntil(self.registration.showNotification(title, {
    body: (data.kind || "notification").replaceAll("_", " "),
    tag: data.id,
    data,
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow("/live/"));
});
