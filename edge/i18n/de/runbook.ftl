# Die Seite zum Notbetrieb.

runbook-heading = Notbetrieb
runbook-mode-now = Der Standort ist jetzt { $mode }.
runbook-mirror-as-of = Die lokale Kopie von Odoo hat den Stand { $when }.
runbook-keeps-working = Was weiterläuft, solange die Cloud nicht erreichbar ist
runbook-floor-local = Jeder Scan, jede Anmeldung und jede Antwort im Lager kommt aus der lokalen Kopie dieses Geräts; das Lager wartet nicht auf Odoo.
runbook-workflows = Kommissionieren, Wareneingang, Inventur und Umlagerungen laufen weiter; jeder Schritt steht im Journal, bevor das Gerät „ok“ hört.
runbook-handhelds = { $n ->
    [one] Ein Handgerät ist eingerichtet.
   *[other] { $n } Handgeräte sind eingerichtet.
}
runbook-scanners = Scanner im Lagernetz arbeiten weiter: { $serial } an seriellen Schnittstellen, { $tcp } über TCP.
runbook-mqtt = MQTT-Scanner arbeiten über den eigenen Broker des Standorts im LAN weiter.
runbook-printers = { $n ->
    [one] Ein Etikettendrucker druckt aus der lokalen Warteschlange.
   *[other] { $n } Etikettendrucker drucken aus der lokalen Warteschlange.
}
runbook-no-printers = Kein Etikettendrucker eingerichtet: Etiketten werden nicht gedruckt.
runbook-over-pick-refuse = Mehr als der Bedarf einer Zeile wird im Lager abgelehnt.
runbook-over-pick-warn = Mehr als der Bedarf einer Zeile ist mit Warnung erlaubt, innerhalb der Grenze des Standorts.
runbook-over-pick-allow = Mehr als der Bedarf einer Zeile ist erlaubt, innerhalb der Grenze des Standorts.
runbook-durable = Nichts Bestätigtes geht verloren: Stromausfall oder Neustart behalten jeden Schritt auf der Platte.
runbook-headroom = Der Speicher hat noch { $headroom } bis zu seiner Obergrenze; ist er voll, werden neue Scans abgelehnt, nie verworfen.
runbook-waits = Was auf die Cloud wartet
runbook-new-work = Neue Lieferungen, geänderte Aufträge und neue Produkte aus Odoo erscheinen erst, wenn die Verbindung zurück ist und der nächste Abgleich läuft.
runbook-stock-elsewhere = Bestand, den andere Standorte oder Personen in Odoo bewegen, ist bis dahin hier nicht sichtbar; das Lager arbeitet mit dem zuletzt gesehenen Bestand.
runbook-stale = Nach { $after } ohne erfolgreichen Abgleich gilt der Standort als eingeschränkt, auch wenn Odoo antwortet.
runbook-no-odoo = Kein Odoo eingerichtet: dieses Gerät arbeitet nur mit seinen lokalen Daten und gleicht nichts ab.
runbook-reconcile = Wie abgeglichen wird
runbook-reconcile-text = Ist die Verbindung zurück, gehen die wartenden Buchungen je Lieferung in der Reihenfolge ihrer Entstehung an Odoo, jede genau einmal. Hat Odoo dasselbe inzwischen geändert, entscheidet die Regel unten; „im Eingang entscheiden“ wartet auf die Leitung auf der Seite Konflikte.
runbook-policies = Konfliktregeln an diesem Standort
runbook-kind = Konflikt
runbook-policy = Regel
policy-manual = im Eingang entscheiden
policy-edge_wins = die Buchung aus dem Lager wird übernommen und markiert
policy-cloud_wins = der Stand in Odoo bleibt; die Buchung aus dem Lager wird zurückgestellt
runbook-site-procedure = Verfahren dieses Standorts
runbook-from-file = Aus { $file }.
runbook-file-error = Das Verfahren des Standorts kann nicht angezeigt werden: { $error }
runbook-no-procedure = Kein Verfahren des Standorts eingerichtet. Schreiben Sie es in Markdown und nennen Sie die Datei als site.runbook_file in der Konfiguration.
