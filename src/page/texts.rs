//! The built-in texts, one table per language. Plain words, short sentences, formal address
//! (Sie, vous, usted); placeholders as listed in `keys`. A test checks every table is complete.

use super::i18n::Lang;
use super::keys::Key;

type Table = &'static [(Key, &'static str)];

#[rustfmt::skip]
const EN: Table = &[
    (Key::WaitingHeadline, "You are in line"),
    (Key::WaitingMessage, "Thank you for waiting. We let people in in the order they arrived."),
    (Key::PausedHeadline, "Entry is paused for a moment"),
    (Key::PausedMessage, "Nobody is let in right now. You keep your place in line."),
    (Key::PrequeueHeadline, "The sale starts soon"),
    (Key::PrequeueMessage, "You are in the pre-queue. When the sale starts, you get your place in line."),
    (Key::EndedHeadline, "The sale has ended"),
    (Key::EndedMessage, "Thank you for your interest. This sale is over."),
    (Key::ClosedHeadline, "Closed right now"),
    (Key::ClosedMessage, "This part of the site is closed. Please come back later."),
    (Key::DegradedHeadline, "You are in line"),
    (Key::DegradedMessage, "We cannot count the line right now. You keep your place, and we will take you in as soon as we can."),
    (Key::AdmittedHeadline, "It is your turn"),
    (Key::AdmittedMessage, "Taking you in now…"),
    (Key::NotQueuedHeadline, "One moment"),
    (Key::NotQueuedMessage, "Getting you a place in line…"),
    (Key::PositionLabel, "Your place in line"),
    (Key::AheadNone, "Nobody is ahead of you."),
    (Key::AheadOne, "1 person is ahead of you."),
    (Key::AheadOther, "{n} people are ahead of you."),
    (Key::EtaLabel, "Estimated wait"),
    (Key::EtaSoon, "less than a minute"),
    (Key::EtaMinute, "about 1 minute"),
    (Key::EtaMinutes, "about {n} minutes"),
    (Key::EtaMinutesRange, "about {low}–{high} minutes"),
    (Key::EtaHours, "about {n} hours"),
    (Key::EtaHoursRange, "about {low}–{high} hours"),
    (Key::EtaUnknown, "not known yet"),
    (Key::ProgressLabel, "Progress of your wait"),
    (Key::KeepOpen, "Keep this page open, we will take you in automatically."),
    (Key::UpdatedNow, "Updated just now"),
    (Key::UpdatedSeconds, "Updated {n} s ago"),
    (Key::UpdatedMinutes, "Updated {n} min ago"),
    (Key::Countdown, "The sale starts in {time}."),
    (Key::Drawing, "The sale has started. Places in line are being drawn, one moment."),
    (Key::ChallengeHeadline, "One moment, please"),
    (Key::ChallengeMessage, "Your browser is solving a small puzzle that keeps bots out of the line. Your place counts from the moment you arrived."),
    (Key::LimitedHeadline, "Too many places from your connection"),
    (Key::LimitedMessage, "Many places in line were taken from your network in a short time. This page tries again by itself in a moment."),
    (Key::UnreachableHeadline, "The shop is not answering"),
    (Key::UnreachableMessage, "Your place is kept. We will try again in a moment."),
    (Key::TimeoutHeadline, "The shop is taking too long"),
    (Key::TimeoutMessage, "Your place is kept. We will try again in a moment."),
];

#[rustfmt::skip]
const DE: Table = &[
    (Key::WaitingHeadline, "Sie sind in der Warteschlange"),
    (Key::WaitingMessage, "Danke fürs Warten. Wir lassen alle in der Reihenfolge ihrer Ankunft herein."),
    (Key::PausedHeadline, "Der Einlass ist kurz unterbrochen"),
    (Key::PausedMessage, "Gerade wird niemand eingelassen. Ihr Platz in der Warteschlange bleibt erhalten."),
    (Key::PrequeueHeadline, "Der Verkauf beginnt bald"),
    (Key::PrequeueMessage, "Sie sind in der Vorwarteschlange. Wenn der Verkauf beginnt, erhalten Sie Ihren Platz in der Warteschlange."),
    (Key::EndedHeadline, "Der Verkauf ist beendet"),
    (Key::EndedMessage, "Danke für Ihr Interesse. Dieser Verkauf ist vorbei."),
    (Key::ClosedHeadline, "Derzeit geschlossen"),
    (Key::ClosedMessage, "Dieser Bereich ist gerade geschlossen. Bitte versuchen Sie es später noch einmal."),
    (Key::DegradedHeadline, "Sie sind in der Warteschlange"),
    (Key::DegradedMessage, "Wir können die Warteschlange gerade nicht zählen. Ihr Platz bleibt erhalten, und wir lassen Sie herein, sobald es geht."),
    (Key::AdmittedHeadline, "Sie sind an der Reihe"),
    (Key::AdmittedMessage, "Wir lassen Sie jetzt herein …"),
    (Key::NotQueuedHeadline, "Einen Moment"),
    (Key::NotQueuedMessage, "Wir holen Ihnen einen Platz in der Warteschlange …"),
    (Key::PositionLabel, "Ihr Platz in der Warteschlange"),
    (Key::AheadNone, "Niemand ist vor Ihnen."),
    (Key::AheadOne, "1 Person ist vor Ihnen."),
    (Key::AheadOther, "{n} Personen sind vor Ihnen."),
    (Key::EtaLabel, "Geschätzte Wartezeit"),
    (Key::EtaSoon, "weniger als eine Minute"),
    (Key::EtaMinute, "etwa 1 Minute"),
    (Key::EtaMinutes, "etwa {n} Minuten"),
    (Key::EtaMinutesRange, "etwa {low}–{high} Minuten"),
    (Key::EtaHours, "etwa {n} Stunden"),
    (Key::EtaHoursRange, "etwa {low}–{high} Stunden"),
    (Key::EtaUnknown, "noch nicht bekannt"),
    (Key::ProgressLabel, "Fortschritt Ihrer Wartezeit"),
    (Key::KeepOpen, "Lassen Sie diese Seite geöffnet, wir lassen Sie automatisch herein."),
    (Key::UpdatedNow, "Gerade aktualisiert"),
    (Key::UpdatedSeconds, "Vor {n} s aktualisiert"),
    (Key::UpdatedMinutes, "Vor {n} min aktualisiert"),
    (Key::Countdown, "Der Verkauf beginnt in {time}."),
    (Key::Drawing, "Der Verkauf hat begonnen. Die Plätze in der Warteschlange werden gerade ausgelost, einen Moment."),
    (Key::ChallengeHeadline, "Einen Moment bitte"),
    (Key::ChallengeMessage, "Ihr Browser löst eine kleine Aufgabe, die Bots aus der Warteschlange fernhält. Ihr Platz zählt ab dem Moment Ihrer Ankunft."),
    (Key::LimitedHeadline, "Zu viele Plätze von Ihrer Verbindung"),
    (Key::LimitedMessage, "Aus Ihrem Netz wurden in kurzer Zeit viele Plätze in der Warteschlange genommen. Diese Seite versucht es gleich von selbst noch einmal."),
    (Key::UnreachableHeadline, "Der Shop antwortet nicht"),
    (Key::UnreachableMessage, "Ihr Platz bleibt erhalten. Wir versuchen es gleich noch einmal."),
    (Key::TimeoutHeadline, "Der Shop braucht zu lange"),
    (Key::TimeoutMessage, "Ihr Platz bleibt erhalten. Wir versuchen es gleich noch einmal."),
];

#[rustfmt::skip]
const FR: Table = &[
    (Key::WaitingHeadline, "Vous êtes dans la file d’attente"),
    (Key::WaitingMessage, "Merci de patienter. Nous faisons entrer chacun dans l’ordre d’arrivée."),
    (Key::PausedHeadline, "L’accès est suspendu un instant"),
    (Key::PausedMessage, "Personne n’entre pour le moment. Vous gardez votre place dans la file."),
    (Key::PrequeueHeadline, "La vente commence bientôt"),
    (Key::PrequeueMessage, "Vous êtes dans la pré-file. Au début de la vente, vous recevrez votre place dans la file."),
    (Key::EndedHeadline, "La vente est terminée"),
    (Key::EndedMessage, "Merci de votre intérêt. Cette vente est terminée."),
    (Key::ClosedHeadline, "Fermé pour le moment"),
    (Key::ClosedMessage, "Cette partie du site est fermée. Merci de revenir plus tard."),
    (Key::DegradedHeadline, "Vous êtes dans la file d’attente"),
    (Key::DegradedMessage, "Nous ne pouvons pas compter la file pour le moment. Vous gardez votre place et nous vous ferons entrer dès que possible."),
    (Key::AdmittedHeadline, "C’est votre tour"),
    (Key::AdmittedMessage, "Nous vous faisons entrer…"),
    (Key::NotQueuedHeadline, "Un instant"),
    (Key::NotQueuedMessage, "Nous vous plaçons dans la file…"),
    (Key::PositionLabel, "Votre place dans la file"),
    (Key::AheadNone, "Personne n’est devant vous."),
    (Key::AheadOne, "1 personne est devant vous."),
    (Key::AheadOther, "{n} personnes sont devant vous."),
    (Key::EtaLabel, "Attente estimée"),
    (Key::EtaSoon, "moins d’une minute"),
    (Key::EtaMinute, "environ 1 minute"),
    (Key::EtaMinutes, "environ {n} minutes"),
    (Key::EtaMinutesRange, "environ {low} à {high} minutes"),
    (Key::EtaHours, "environ {n} heures"),
    (Key::EtaHoursRange, "environ {low} à {high} heures"),
    (Key::EtaUnknown, "pas encore connue"),
    (Key::ProgressLabel, "Progression de votre attente"),
    (Key::KeepOpen, "Gardez cette page ouverte, nous vous ferons entrer automatiquement."),
    (Key::UpdatedNow, "Mis à jour à l’instant"),
    (Key::UpdatedSeconds, "Mis à jour il y a {n} s"),
    (Key::UpdatedMinutes, "Mis à jour il y a {n} min"),
    (Key::Countdown, "La vente commence dans {time}."),
    (Key::Drawing, "La vente a commencé. Les places dans la file sont en cours de tirage, un instant."),
    (Key::ChallengeHeadline, "Un instant, s’il vous plaît"),
    (Key::ChallengeMessage, "Votre navigateur résout une petite énigme qui tient les robots hors de la file. Votre place compte depuis votre arrivée."),
    (Key::LimitedHeadline, "Trop de places depuis votre connexion"),
    (Key::LimitedMessage, "Beaucoup de places dans la file ont été prises depuis votre réseau en peu de temps. Cette page réessaie d’elle-même dans un instant."),
    (Key::UnreachableHeadline, "La boutique ne répond pas"),
    (Key::UnreachableMessage, "Votre place est conservée. Nous réessayons dans un instant."),
    (Key::TimeoutHeadline, "La boutique met trop de temps à répondre"),
    (Key::TimeoutMessage, "Votre place est conservée. Nous réessayons dans un instant."),
];

#[rustfmt::skip]
const ES: Table = &[
    (Key::WaitingHeadline, "Está en la fila"),
    (Key::WaitingMessage, "Gracias por esperar. Dejamos pasar a todos en el orden en que llegaron."),
    (Key::PausedHeadline, "El acceso está en pausa un momento"),
    (Key::PausedMessage, "Ahora mismo no pasa nadie. Usted conserva su lugar en la fila."),
    (Key::PrequeueHeadline, "La venta empieza pronto"),
    (Key::PrequeueMessage, "Está en la fila previa. Cuando empiece la venta, recibirá su lugar en la fila."),
    (Key::EndedHeadline, "La venta ha terminado"),
    (Key::EndedMessage, "Gracias por su interés. Esta venta ha terminado."),
    (Key::ClosedHeadline, "Cerrado por ahora"),
    (Key::ClosedMessage, "Esta parte del sitio está cerrada. Por favor, vuelva más tarde."),
    (Key::DegradedHeadline, "Está en la fila"),
    (Key::DegradedMessage, "Ahora no podemos contar la fila. Usted conserva su lugar y le dejaremos pasar en cuanto sea posible."),
    (Key::AdmittedHeadline, "Es su turno"),
    (Key::AdmittedMessage, "Le estamos dejando pasar…"),
    (Key::NotQueuedHeadline, "Un momento"),
    (Key::NotQueuedMessage, "Le estamos dando un lugar en la fila…"),
    (Key::PositionLabel, "Su lugar en la fila"),
    (Key::AheadNone, "No hay nadie delante de usted."),
    (Key::AheadOne, "Hay 1 persona delante de usted."),
    (Key::AheadOther, "Hay {n} personas delante de usted."),
    (Key::EtaLabel, "Espera estimada"),
    (Key::EtaSoon, "menos de un minuto"),
    (Key::EtaMinute, "aproximadamente 1 minuto"),
    (Key::EtaMinutes, "aproximadamente {n} minutos"),
    (Key::EtaMinutesRange, "entre {low} y {high} minutos"),
    (Key::EtaHours, "aproximadamente {n} horas"),
    (Key::EtaHoursRange, "entre {low} y {high} horas"),
    (Key::EtaUnknown, "aún no se conoce"),
    (Key::ProgressLabel, "Progreso de su espera"),
    (Key::KeepOpen, "Mantenga esta página abierta, le dejaremos pasar automáticamente."),
    (Key::UpdatedNow, "Actualizado ahora mismo"),
    (Key::UpdatedSeconds, "Actualizado hace {n} s"),
    (Key::UpdatedMinutes, "Actualizado hace {n} min"),
    (Key::Countdown, "La venta empieza en {time}."),
    (Key::Drawing, "La venta ha empezado. Se están sorteando los lugares en la fila, un momento."),
    (Key::ChallengeHeadline, "Un momento, por favor"),
    (Key::ChallengeMessage, "Su navegador resuelve un pequeño acertijo que mantiene a los bots fuera de la fila. Su lugar cuenta desde el momento en que llegó."),
    (Key::LimitedHeadline, "Demasiados lugares desde su conexión"),
    (Key::LimitedMessage, "Desde su red se tomaron muchos lugares en la fila en poco tiempo. Esta página lo intentará de nuevo por sí sola en un momento."),
    (Key::UnreachableHeadline, "La tienda no responde"),
    (Key::UnreachableMessage, "Conserva su lugar. Lo intentaremos de nuevo en un momento."),
    (Key::TimeoutHeadline, "La tienda tarda demasiado"),
    (Key::TimeoutMessage, "Conserva su lugar. Lo intentaremos de nuevo en un momento."),
];

fn table(lang: Lang) -> Table {
    match lang {
        Lang::En => EN,
        Lang::De => DE,
        Lang::Fr => FR,
        Lang::Es => ES,
    }
}

/// The built-in text of `key` in `lang` (English if a table lacked it, which a test rules out).
pub(super) fn builtin(lang: Lang, key: Key) -> &'static str {
    let find = |table: Table| table.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
    find(table(lang)).or_else(|| find(EN)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::strings::unknown_placeholders;

    #[test]
    fn every_language_has_every_text_once_with_valid_placeholders() {
        for lang in Lang::ALL {
            let table = table(lang);
            assert_eq!(table.len(), Key::ALL.len(), "{lang:?}");
            for key in Key::ALL {
                let found: Vec<_> = table.iter().filter(|(k, _)| *k == key).collect();
                assert_eq!(found.len(), 1, "{lang:?} {key:?}");
                let text = found[0].1;
                assert!(!text.trim().is_empty(), "{lang:?} {key:?}");
                assert!(
                    unknown_placeholders(key, text).is_empty(),
                    "{lang:?} {key:?}: {text}"
                );
                for wanted in key.placeholders() {
                    let optional = key == Key::AheadOne;
                    assert!(
                        optional || text.contains(&format!("{{{wanted}}}")),
                        "{lang:?} {key:?} lacks {{{wanted}}}"
                    );
                }
            }
        }
    }
}
