# The degraded-mode runbook page.

runbook-heading = Degraded-mode runbook
runbook-mode-now = The site is { $mode } now.
runbook-mirror-as-of = The local copy of Odoo is as of { $when }.
runbook-keeps-working = What keeps working while the cloud is away
runbook-floor-local = Every scan, sign-in and answer on the floor comes from this appliance's local copy; the floor does not wait for Odoo.
runbook-workflows = Picking, receiving, counting and transfers between bins go on; each step is written to the journal before the device hears "ok".
runbook-handhelds = { $n ->
    [one] One handheld is configured.
   *[other] { $n } handhelds are configured.
}
runbook-scanners = Scanners on the warehouse network keep working: { $serial } on serial ports, { $tcp } over TCP.
runbook-mqtt = MQTT scanners keep working through the site's own broker on the LAN.
runbook-printers = { $n ->
    [one] One label printer prints from the local queue.
   *[other] { $n } label printers print from the local queue.
}
runbook-no-printers = No label printer is configured: labels are not printed.
runbook-over-pick-refuse = More than a line's demand is refused on the floor.
runbook-over-pick-warn = More than a line's demand is allowed with a warning, within the site's limit.
runbook-over-pick-allow = More than a line's demand is allowed, within the site's limit.
runbook-durable = Nothing acknowledged is lost: a power cut or a restart keeps every step on disk.
runbook-headroom = The store has { $headroom } left before its size cap; when it is full, new scans are refused, never dropped.
runbook-waits = What waits for the cloud
runbook-new-work = New pickings, changed orders and new products made in Odoo are seen only after the link is back and the next pull runs.
runbook-stock-elsewhere = Stock moved by other sites or by people working in Odoo is not seen here until then; the floor works with the stock it last saw.
runbook-stale = After { $after } without a successful pull the site counts as degraded, even while Odoo answers.
runbook-no-odoo = No Odoo is configured: this appliance works on its local data only and reconciles nothing.
runbook-reconcile = How reconciliation happens
runbook-reconcile-text = When the link is back, the queued operations go to Odoo in the order they were made on each picking, each exactly once. Where Odoo changed the same thing meanwhile, the policy below decides; "decide in the inbox" waits for a manager on the Conflicts page.
runbook-policies = Conflict policies in force at this site
runbook-kind = Conflict
runbook-policy = Policy
policy-manual = decide in the inbox
policy-edge_wins = the floor's record is applied, and flagged
policy-cloud_wins = Odoo's state is kept; the floor's record is set aside
runbook-site-procedure = This site's procedure
runbook-from-file = From { $file }.
runbook-file-error = The site's procedure cannot be shown: { $error }
runbook-no-procedure = No site procedure is configured. Write it in Markdown and name the file as site.runbook_file in the configuration.
