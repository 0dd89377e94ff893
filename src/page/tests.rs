//! Whole pages: every state rendered through the built-in template, in several languages, and
//! a zone's own template and texts from config.

use super::*;
use crate::admission::Eta;
use crate::config::{Config, ZoneConfig};

const NOW: u64 = 1_800_000_000_000;

fn config(zone_extra: &str, top: &str, dir: &std::path::Path) -> Config {
    let text = format!(
        "{top}\n[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", env = \"UNUSED\" }}\n\
         [zones.checkout]\ntitle = \"Big <Show>\"\npaths = [\"/checkout\"]\ncapacity = 5\n\
         admit_per_minute = 60\n{zone_extra}\n"
    );
    crate::config::parse(&text, dir).expect("valid config")
}

fn look(zone: &ZoneConfig) -> Look<'_> {
    Look {
        template: zone.template.as_deref(),
        strings: &zone.strings,
    }
}

fn status_of(config: &Config, state: State) -> Status {
    let zone = &config.zones[0];
    let heading = Heading {
        zone: zone.name.clone(),
        title: zone.title.clone(),
        refresh_ms: zone.refresh_interval.as_millis() as u64,
        event: None,
        message: String::new(),
    };
    match state {
        State::Waiting | State::Paused => {
            let eta = Eta {
                seconds: 300,
                low: 200,
                high: 350,
            };
            Status::waiting(heading, state, 41, eta, NOW - 100_000, NOW)
        }
        _ => Status::without_place(heading, state, NOW),
    }
}

fn page(state: State, lang: Lang) -> String {
    let config = config("", "", std::path::Path::new("."));
    render(look(&config.zones[0]), &status_of(&config, state), lang)
}

/// The text of the element with `id`, up to its closing tag.
fn element<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let text = &html[start..];
    let open_end = text.find('>').expect("tag end") + 1;
    let close = text.find("</").expect("closing tag");
    &text[open_end..close]
}

const EVERY_STATE: [State; 8] = [
    State::Waiting,
    State::Paused,
    State::Prequeue,
    State::Ended,
    State::Closed,
    State::Admitted,
    State::NotQueued,
    State::Challenge,
];

#[test]
fn every_state_has_the_live_region_the_ids_and_its_own_headline() {
    let mut headlines = Vec::new();
    for state in EVERY_STATE {
        let html = page(state, Lang::En);
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{state:?}"
        );
        assert!(html.contains("aria-live=\"polite\""), "{state:?}");
        assert!(
            html.contains(&format!("<body data-state=\"{}\"", state.as_str())),
            "{state:?}"
        );
        for id in [
            "position", "ahead", "eta", "progress", "updated", "headline",
        ] {
            assert!(
                html.contains(&format!("id=\"{id}\"")),
                "{state:?} lacks #{id}"
            );
        }
        assert!(html.contains("Big &lt;Show&gt;"), "the title, escaped");
        assert!(!html.contains("Big <Show>"));
        headlines.push(element(&html, "headline").to_string());
    }
    headlines.sort();
    headlines.dedup();
    assert_eq!(headlines.len(), EVERY_STATE.len(), "{headlines:?}");
}

#[test]
fn the_timer_refresh_is_only_for_browsers_without_javascript() {
    for state in EVERY_STATE {
        let html = page(state, Lang::En);
        let refreshes = html.matches("http-equiv=\"refresh\"").count();
        let in_noscript = html
            .matches("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>")
            .count();
        assert_eq!(
            refreshes, in_noscript,
            "{state:?}: a refresh outside <noscript>"
        );
        // A puzzle needs the script: without it, reloading only brings the same puzzle.
        let waits = !matches!(state, State::Closed | State::Ended | State::Challenge);
        assert_eq!(refreshes, usize::from(waits), "{state:?}");
        let head = &html[..html.find("</head>").expect("head")];
        assert!(head.contains("<noscript>") == waits, "{state:?}: in <head>");
    }
    let script = assets::script().body;
    assert!(
        !script.contains("reload("),
        "the script never reloads the page"
    );
    assert!(!script.contains("http-equiv"));
    assert!(script.contains("location.replace(location.href"));
    assert!(script.contains("new EventSource('/_usher/events?zone='"));
    assert!(script.contains("fetch('/_usher/status?zone='"));
}

#[test]
fn waiting_shows_the_numbers_a_range_and_progress() {
    let html = page(State::Waiting, Lang::En);
    assert_eq!(element(&html, "position"), "42");
    assert_eq!(element(&html, "ahead"), "41 people are ahead of you.");
    assert_eq!(element(&html, "eta"), "about 4–6 minutes");
    assert_eq!(element(&html, "updated"), "Updated just now");
    assert!(
        html.contains("<progress id=\"progress\" max=\"100\" value=\"25\""),
        "{html}"
    );
    assert!(html.contains("Keep this page open, we will take you in automatically."));
    assert!(html.contains("data-view=\"waiting\""));
}

#[test]
fn paused_degraded_and_prequeue_say_what_they_are() {
    let html = page(State::Paused, Lang::En);
    assert_eq!(element(&html, "headline"), "Entry is paused for a moment");
    assert_eq!(element(&html, "eta"), "not known yet");

    let config = config("", "", std::path::Path::new("."));
    let mut degraded = status_of(&config, State::Waiting);
    degraded.degraded = true;
    let html = render(look(&config.zones[0]), &degraded, Lang::En);
    assert!(html.contains("data-state=\"waiting\" data-view=\"degraded\""));
    assert!(element(&html, "message").contains("You keep your place"));

    let mut prequeue = status_of(&config, State::Prequeue);
    prequeue.event = Some(EventInfo {
        name: "tour".into(),
        title: "The Tour & more".into(),
        prequeue_at_ms: NOW - 60_000,
        starts_at_ms: NOW + 3_723_000,
        ends_at_ms: NOW + 7_200_000,
        draw_seed: None,
        drawn_at_ms: None,
    });
    let html = render(look(&config.zones[0]), &prequeue, Lang::De);
    assert_eq!(
        element(&html, "countdown"),
        "Der Verkauf beginnt in 1:02:03."
    );
    assert_eq!(element(&html, "headline"), "Der Verkauf beginnt bald");
    assert_eq!(
        element(&html, "title"),
        "The Tour &amp; more",
        "the event's title"
    );
    // Past the start, until the draw's grace is over: no "0:00:00", the draw is named.
    if let Some(event) = prequeue.event.as_mut() {
        event.starts_at_ms = NOW - 1_000;
    }
    let html = render(look(&config.zones[0]), &prequeue, Lang::En);
    assert_eq!(
        element(&html, "countdown"),
        "The sale has started. Places in line are being drawn, one moment."
    );
}

#[test]
fn the_page_speaks_the_chosen_language() {
    let expected = [
        (
            Lang::De,
            "Sie sind in der Warteschlange",
            "etwa 4–6 Minuten",
        ),
        (
            Lang::Fr,
            "Vous êtes dans la file d’attente",
            "environ 4 à 6 minutes",
        ),
        (Lang::Es, "Está en la fila", "entre 4 y 6 minutos"),
    ];
    for (lang, headline, eta) in expected {
        let html = page(State::Waiting, lang);
        assert!(html.contains(&format!("<html lang=\"{}\">", lang.code())));
        assert_eq!(element(&html, "headline"), headline);
        assert_eq!(element(&html, "eta"), eta);
    }
    let ended = page(State::Ended, Lang::Fr);
    assert_eq!(element(&ended, "headline"), "La vente est terminée");
}

#[test]
fn the_pages_data_is_json_that_cannot_end_its_script_block() {
    let config = config("", "", std::path::Path::new("."));
    let mut status = status_of(&config, State::Waiting);
    status.title = "</script><script>alert(1)</script>".into();
    let html = render(look(&config.zones[0]), &status, Lang::En);
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "only the two real blocks close"
    );
    let start = html.find("id=\"usher-data\">").expect("data") + "id=\"usher-data\">".len();
    let end = start + html[start..].find("</script>").expect("end");
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).expect("json");
    assert_eq!(
        data["status"]["title"],
        "</script><script>alert(1)</script>"
    );
    assert_eq!(data["status"]["position"], 42);
    assert_eq!(
        data["strings"]["ahead_other"],
        "{n} people are ahead of you."
    );
    let head = &html[..html.find("</head>").expect("head")];
    assert!(head.contains(&format!(
        "<link rel=\"stylesheet\" href=\"{}\">",
        assets::stylesheet().url()
    )));
    assert!(head.contains(&format!(
        "<script src=\"{}\" defer></script>",
        assets::script().url()
    )));
}

#[test]
fn a_zones_own_template_and_texts_are_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mine.html"),
        "<html lang=\"{{lang}}\"><head>{{usher_head}}</head><body><b id=\"position\">{{position}}</b>\
         <i>{{keep_open}}</i><u>{{title}}</u></body></html>",
    )
    .expect("template");
    let config = config(
        "template = \"mine.html\"\n[zones.checkout.strings.de]\nkeep_open = \"Bleiben Sie <hier>\"",
        "[strings.en]\nkeep_open = \"Stay right here\"",
        dir.path(),
    );
    let zone = &config.zones[0];
    let status = status_of(&config, State::Waiting);
    let de = render(look(zone), &status, Lang::De);
    assert!(de.starts_with("<html lang=\"de\"><head><noscript>"), "{de}");
    assert!(de.contains(
        "<b id=\"position\">42</b><i>Bleiben Sie &lt;hier&gt;</i><u>Big &lt;Show&gt;</u>"
    ));
    let en = render(look(zone), &status, Lang::En);
    assert!(
        en.contains("<i>Stay right here</i>"),
        "the file's override reaches the zone"
    );
}

#[test]
fn the_built_in_page_is_small() {
    let html = page(State::Waiting, Lang::De);
    assert!(html.len() < 4_096, "{} bytes", html.len());
    assert!(builtin() == builtin(), "parsed once");
}

#[test]
fn the_docs_list_every_variable_and_text() {
    let docs = include_str!("../../docs/waiting-page.md");
    for var in Var::ALL {
        let row = format!("| `{{{{{}}}}}` |", var.name());
        assert!(docs.contains(&row), "docs/waiting-page.md lacks {row}");
    }
    for key in Key::ALL {
        let row = format!("| `{}` | {} |", key.name(), texts::builtin(Lang::En, key));
        assert!(docs.contains(&row), "docs/waiting-page.md lacks {row}");
    }
}
