# Die Betriebsseiten der Konsole: Rückstau, Geräte und Drucker, Zwischenspeicher.

backlog-heading = Rückstau der letzten 24 Stunden
backlog-intro = Das Gerät zeichnet die Warteschlange alle { $every } Sekunden auf und bewahrt zwei Tage auf.
backlog-depth = Länge der Warteschlange (wartend und in Übertragung)
backlog-age = Alter des ältesten offenen Eintrags
backlog-drain = In Odoo übernommene Einträge pro Minute
backlog-depth-summary = Länge der Warteschlange in den letzten 24 Stunden: jetzt { $now }, höchstens { $max } um { $at }.
backlog-age-summary = Alter des ältesten offenen Eintrags in den letzten 24 Stunden: jetzt { $now }, höchstens { $max } um { $at }.
backlog-drain-summary = In Odoo übernommene Einträge pro Minute in den letzten 24 Stunden: { $now } in der letzten Minute, höchstens { $max } um { $at }.
backlog-samples = { $n ->
    [one] Ein Messpunkt, aufgenommen um { $last }.
   *[other] { $n } Messpunkte, der letzte aufgenommen um { $last }.
}
backlog-none = Noch keine Messpunkte. Der erste wird beim Start des Geräts aufgenommen, danach einer pro Minute.

kind-scanner = Scanner
kind-printer = Drucker
kind-broker = Broker-Verbindung
state-online = online
state-offline = offline
state-fault = Störung
state-unknown = unbekannt
job-queued = wartet
job-sending = wird gesendet
job-sent = gesendet
job-unknown = Ausgang unbekannt
job-cancelled = abgebrochen

devices-heading = Geräte und Drucker
devices-scanners = Scanner und Broker-Verbindungen
devices-id = Kennung
devices-kind = Art
devices-state = Zustand
devices-last-seen = Zuletzt gesehen
devices-scans = Scans
devices-refused = Abgewiesen
devices-errors = Fehler
devices-last-error = Letzter Fehler
devices-no-scanners = Es sind keine Scanner eingerichtet oder gesehen worden.
devices-printers = Drucker
devices-address = Adresse
devices-queued = Wartend
devices-unknown = Ausgang unbekannt
devices-no-printers = Es sind keine Drucker eingerichtet.
devices-jobs = Druckwarteschlange (neueste zuerst)
devices-job = Auftrag
devices-printer = Drucker
devices-template = Etikett
devices-attempts = Versuche
devices-requested = Angefordert
devices-actions = Aktionen
devices-reprint-of = Nachdruck von Auftrag { $id }
devices-reprint = Nachdrucken
devices-reprint-job = Auftrag { $id } nachdrucken
devices-cancel = Abbrechen
devices-cancel-job = Auftrag { $id } abbrechen
devices-no-jobs = Keine Druckaufträge.
devices-handhelds = Handgeräte und ihre Schlüssel
devices-token = Schlüssel
devices-token-config = in der Konfigurationsdatei festgelegt
devices-token-revoked = gesperrt am { $at }
devices-token-issued = ausgegeben am { $at }
devices-revoke-confirm = Den Schlüssel von { $id } sperren? Das Handgerät funktioniert sofort nicht mehr und sein Bediener wird abgemeldet.
devices-revoke = Sperren
devices-revoke-device = Den Schlüssel von { $id } sperren
devices-no-handhelds = Noch kein Handgerät hat einen Schlüssel.
devices-issue-heading = Schlüssel ausgeben
devices-issue-help = Für ein neues Handgerät oder als Ersatz für einen verlorenen Schlüssel: Der alte Schlüssel dieser Kennung funktioniert dann nicht mehr.
devices-issue-id = Kennung des Handgeräts (Buchstaben, Ziffern, - und _)
devices-issue = Schlüssel ausgeben
devices-issue-once = Der neue Schlüssel, nur dieses eine Mal angezeigt. Geben Sie ihn jetzt am Handgerät ein; das Gerät speichert nur einen Fingerabdruck davon.

cache-heading = Zwischenspeicher von Odoo
cache-no-odoo = Es ist kein Odoo eingerichtet: Der Spiegel wird nicht aufgefrischt.
cache-last-pull = Letzter Abruf
cache-last-ok = Letzter erfolgreicher Abruf
cache-mirror-age = Alter des Spiegels
cache-last-report = Letzter Abruf schrieb
cache-report = { $records } Datensätze, { $deleted } gelöscht, { $held } zurückgehalten
cache-running = Laufender Abruf
cache-running-full = Vollständiger Abruf: { $model }, bisher { $records } Datensätze (begonnen { $started })
cache-running-incremental = Inkrementeller Abruf: { $model }, bisher { $records } Datensätze (begonnen { $started })
cache-idle = keiner
cache-last-error = Letzter Fehler
cache-failures = { $n ->
    [one] ein Fehlschlag in Folge
   *[other] { $n } Fehlschläge in Folge
}
cache-full = Vollständiger Abruf (liest alle Datensätze neu; dauert länger)
cache-pull-now = Jetzt abrufen
cache-models = Gespiegelte Modelle
cache-model = Modell
cache-records = Datensätze
cache-full-at = Letzter vollständiger Abruf
cache-incremental-at = Letzter inkrementeller Abruf
