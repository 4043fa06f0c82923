// MoCert's inbox service worker (served from /m/inbox-sw.js for the scope /m/inbox): shows a notice when an
// agency's request is pushed to this phone, tells an open inbox to look now, and opens the inbox when the
// notice is tapped. A notice carries only the agency's name; the inbox, opened with the passkey, the rest.
"use strict";

const TEXT = {{ {
  "title": _("MoCert: a request is waiting"),
  "body": _("%(agency)s sent a request to this phone. Open the inbox to answer it.", agency="{agency}"),
  "bodyUnnamed": _("An agency sent a request to this phone. Open the inbox to answer it."),
}|tojson }};
const INBOX = {{ url_for("inbox.inbox_page")|tojson }};

self.addEventListener("push", (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch (err) {
    notice = {};
  }
  const agency = typeof notice.sp_name === "string" ? notice.sp_name.slice(0, 200) : "";
  const shown = self.registration.showNotification(TEXT.title, {
    body: agency ? TEXT.body.replace("{agency}", agency) : TEXT.bodyUnnamed,
    tag: "mocert-inbox", // one notice on the lock screen however many requests came
    renotify: true,
  });
  const told = self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then((windows) => windows.forEach((client) => client.postMessage({ kind: "sp_request" })));
  event.waitUntil(Promise.all([shown, told]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  // Always this server's own inbox: a notice's URL is not followed, whatever it says.
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
    const open = windows.find((client) => new URL(client.url).pathname === INBOX && "focus" in client);
    return open ? open.focus() : self.clients.openWindow(INBOX);
  }));
});
