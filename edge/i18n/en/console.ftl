# The console's frame, sign-in page and overview. Keys are shared by every language file.

role-viewer = viewer
role-manager = manager

nav-label = Console
nav-language = Language
nav-sign-out = Sign out
nav-overview = Overview
nav-backlog = Backlog
nav-conflicts = Conflicts
nav-journal = Journal
nav-sessions = Floor sessions
nav-devices = Devices and printers
nav-cache = Cache
nav-runbook = Runbook
nav-audit = Audit

login-title = Sign in
login-heading = Holdfast console
login-name = Name
login-password = Password
login-submit = Sign in
login-failed = Unknown name or wrong password.
login-locked = Too many failed sign-ins. Wait a few minutes, then try again.
login-invalid = Enter a name and a password.

action-failed = Not done: { $message }
action-done = Done.

mode-online = online
mode-degraded = degraded
mode-offline = offline
mode-unknown = not yet known

overview-since = since
overview-queue = Queue
overview-oldest-pending = Oldest pending
overview-drain-rate = Drain rate
overview-eta = Drained in
overview-last-pull = Last pull
overview-database = Database
overview-devices = Devices online
overview-printers = Printers online
overview-conflicts = Open conflicts
overview-lockouts = Sign-in lock-outs
overview-tls = HTTPS fingerprint
overview-updated = Updated
overview-now = now
overview-unreachable = not reachable

queue-empty = empty
queue-pending = pending { $n }
queue-in_flight = in flight { $n }
queue-conflict = conflict { $n }
queue-rejected = rejected { $n }
queue-applied = applied { $n }
queue-resolved = resolved { $n }
none-pending = none pending
no-push = no push running
per-second = { $rate } / s
never = never
odoo-none = none configured
odoo-unreachable = { $url }: not reachable ({ $failures } failures in a row: { $message })
odoo-reachable = { $url }: reachable
odoo-not-yet = { $url }: not yet reached
database-capped = { $size } of { $cap } ({ $headroom } headroom)
database-uncapped = { $size } (no cap set)
of-total = { $up } of { $total }
lockouts-summary = { $failures } failed sign-ins, { $device } device and { $site } site lock-outs, { $locked } locked now
conflicts-summary = { $open } open, { $flagged } flagged
time-ago = { $at } ({ $ago } ago)
odoo-offline = { $url }: not reachable now (see the banner)
https-off = HTTPS off
