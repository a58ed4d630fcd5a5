# Rahmen, Anmeldeseite und Übersicht der Konsole.

role-viewer = Leser
role-manager = Leitung

nav-label = Konsole
nav-language = Sprache
nav-sign-out = Abmelden
nav-overview = Übersicht
nav-backlog = Rückstand
nav-conflicts = Konflikte
nav-journal = Journal
nav-sessions = Sitzungen im Lager
nav-devices = Geräte und Drucker
nav-cache = Zwischenspeicher
nav-runbook = Notbetrieb
nav-audit = Protokoll

login-title = Anmelden
login-heading = Holdfast-Konsole
login-name = Name
login-password = Passwort
login-submit = Anmelden
login-failed = Unbekannter Name oder falsches Passwort.
login-locked = Zu viele fehlgeschlagene Anmeldungen. Warten Sie einige Minuten und versuchen Sie es dann erneut.
login-invalid = Geben Sie einen Namen und ein Passwort ein.

action-failed = Nicht ausgeführt: { $message }
action-done = Erledigt.

mode-online = online
mode-degraded = eingeschränkt
mode-offline = offline
mode-unknown = noch unbekannt

overview-since = seit
overview-queue = Warteschlange
overview-oldest-pending = Älteste wartende Buchung
overview-drain-rate = Abbaurate
overview-eta = Abgebaut in
overview-last-pull = Letzter Abgleich
overview-database = Datenbank
overview-devices = Geräte online
overview-printers = Drucker online
overview-conflicts = Offene Konflikte
overview-lockouts = Anmeldesperren
overview-tls = HTTPS-Fingerabdruck
overview-updated = Aktualisiert
overview-now = jetzt
overview-unreachable = nicht erreichbar

queue-empty = leer
queue-pending = wartend { $n }
queue-in_flight = unterwegs { $n }
queue-conflict = Konflikt { $n }
queue-rejected = abgelehnt { $n }
queue-applied = gebucht { $n }
queue-resolved = entschieden { $n }
none-pending = nichts wartet
no-push = keine Übertragung aktiv
per-second = { $rate } / s
never = nie
odoo-none = nicht konfiguriert
odoo-unreachable = { $url }: nicht erreichbar ({ $failures } Fehler in Folge: { $message })
odoo-reachable = { $url }: erreichbar
odoo-not-yet = { $url }: noch nicht erreicht
database-capped = { $size } von { $cap } ({ $headroom } frei)
database-uncapped = { $size } (keine Obergrenze)
of-total = { $up } von { $total }
lockouts-summary = { $failures } fehlgeschlagene Anmeldungen, { $device } Geräte- und { $site } Standortsperren, { $locked } jetzt gesperrt
conflicts-summary = { $open } offen, { $flagged } markiert
time-ago = { $at } (vor { $ago })
odoo-offline = { $url }: jetzt nicht erreichbar (siehe Hinweis oben)
https-off = HTTPS aus
