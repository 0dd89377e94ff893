//! The minimal waiting page: position, people ahead, ETA, and a `<meta refresh>` so it moves on
//! its own without JavaScript; reloading the same URL is also how an admitted visitor goes in.

use super::status::{State, Status};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn minutes(seconds: u64) -> String {
    match seconds {
        0..=59 => "less than a minute".to_string(),
        60..=119 => "about 1 minute".to_string(),
        s => format!("about {} minutes", s.div_ceil(60)),
    }
}

fn layout(title: &str, refresh_s: Option<u64>, body: &str) -> String {
    let refresh = refresh_s
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}\
<title>{title}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}\
.big{{font-size:2.5rem;font-weight:700;margin:.2rem 0}}\
.muted{{color:#555}}</style></head><body><main>{body}</main></body></html>"
    )
}

/// The waiting page for `status`.
pub fn waiting(status: &Status) -> String {
    let title = escape(&status.title);
    let refresh_s = status.refresh_ms.div_ceil(1_000).max(1);
    let headline = if status.state == State::Paused {
        "Entry is paused for a moment. You keep your place."
    } else {
        "You are in line."
    };
    let numbers = if status.degraded {
        "<p>We are busy counting the line. You keep your place.</p>".to_string()
    } else {
        format!(
            "<p>Your place in line</p><p class=\"big\" id=\"position\">{}</p>\
<p id=\"ahead\">{} people ahead of you</p>\
<p id=\"eta\">Estimated wait: {} ({}&ndash;{} s)</p>",
            status.position,
            status.ahead,
            minutes(status.eta_seconds),
            status.eta_low_seconds,
            status.eta_high_seconds
        )
    };
    let body = format!(
        "<h1>{title}</h1><p>{headline}</p>{numbers}\
<p class=\"muted\">Keep this page open: we will take you in automatically. \
This page refreshes every {refresh_s} s.</p>"
    );
    layout(&format!("Waiting: {title}"), Some(refresh_s), &body)
}

/// The page of a closed zone.
pub fn closed(title: &str) -> String {
    let title = escape(title);
    layout(
        &title,
        None,
        &format!("<h1>{title}</h1><p>This is closed right now. Please come back later.</p>"),
    )
}
