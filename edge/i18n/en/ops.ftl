# The console's operations pages: backlog, devices and printers, cache. Keys are shared by
# every language file.

backlog-heading = Backlog over the last 24 hours
backlog-intro = The appliance records the queue every { $every } seconds and keeps two days.
backlog-depth = Queue depth (pending and in flight)
backlog-age = Age of the oldest open entry
backlog-drain = Entries applied in Odoo per minute
backlog-depth-summary = Queue depth over the last 24 hours: { $now } now, highest { $max } at { $at }.
backlog-age-summary = Age of the oldest open entry over the last 24 hours: { $now } now, longest { $max } at { $at }.
backlog-drain-summary = Entries applied in Odoo per minute over the last 24 hours: { $now } in the last minute, highest { $max } at { $at }.
backlog-samples = { $n ->
    [one] One sample, taken at { $last }.
   *[other] { $n } samples, the last taken at { $last }.
}
backlog-none = No samples recorded yet. The first one is taken when the appliance starts, then one every minute.

kind-scanner = scanner
kind-printer = printer
kind-broker = broker link
state-online = online
state-offline = offline
state-fault = fault
state-unknown = unknown
job-queued = queued
job-sending = sending
job-sent = sent
job-unknown = outcome unknown
job-cancelled = cancelled

devices-heading = Devices and printers
devices-scanners = Scanners and broker links
devices-id = Id
devices-kind = Kind
devices-state = State
devices-last-seen = Last seen
devices-scans = Scans
devices-refused = Refused
devices-errors = Errors
devices-last-error = Last error
devices-no-scanners = No scanners are configured or have been seen.
devices-printers = Printers
devices-address = Address
devices-queued = Waiting
devices-unknown = Outcome unknown
devices-no-printers = No printers are configured.
devices-jobs = Print queue (newest first)
devices-job = Job
devices-printer = Printer
devices-template = Label
devices-attempts = Attempts
devices-requested = Requested
devices-actions = Actions
devices-reprint-of = reprint of job { $id }
devices-reprint = Reprint
devices-reprint-job = Reprint job { $id }
devices-cancel = Cancel
devices-cancel-job = Cancel job { $id }
devices-no-jobs = No print jobs.
devices-handhelds = Handhelds and their tokens
devices-token = Token
devices-token-config = set in the configuration file
devices-token-revoked = revoked on { $at }
devices-token-issued = issued on { $at }
devices-revoke-confirm = Revoke the token of { $id }? The handheld stops working at once and its operator is signed out.
devices-revoke = Revoke
devices-revoke-device = Revoke the token of { $id }
devices-no-handhelds = No handhelds have a token yet.
devices-issue-heading = Issue a token
devices-issue-help = For a new handheld, or to replace a lost token: the old token of that id stops working.
devices-issue-id = Handheld id (letters, digits, - and _)
devices-issue = Issue token
devices-issue-once = The new token, shown only this once. Enter it on the handheld now; the appliance keeps only a fingerprint of it.

cache-heading = Cache of Odoo
cache-no-odoo = No Odoo is configured: the mirror is not refreshed.
cache-last-pull = Last pull
cache-last-ok = Last successful pull
cache-mirror-age = Mirror age
cache-last-report = Last pull wrote
cache-report = { $records } records, { $deleted } deleted, { $held } held back
cache-running = Pull in progress
cache-running-full = full pull: { $model }, { $records } records so far (started { $started })
cache-running-incremental = incremental pull: { $model }, { $records } records so far (started { $started })
cache-idle = none
cache-last-error = Last error
cache-failures = { $n ->
    [one] one failure in a row
   *[other] { $n } failures in a row
}
cache-full = Full pull (reads every record again; takes longer)
cache-pull-now = Pull now
cache-models = Mirrored models
cache-model = Model
cache-records = Records
cache-full-at = Last full pull
cache-incremental-at = Last incremental pull
