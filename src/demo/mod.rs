//! The demo shop that `usher demo` puts behind usher, and the small HTTP/1.1 origin server it runs
//! on (also used by the integration tests as their test origin).

pub mod origin;

use origin::{OriginRequest, OriginResponse};

/// The demo shop: a home page, a protected checkout, and a "done" page that releases the slot.
pub async fn shop(req: OriginRequest) -> OriginResponse {
    let visitor = req.header("usher-visitor").unwrap_or("(none)").to_string();
    let waited = req.header("usher-queue-time").unwrap_or("0").to_string();
    let page = |title: &str, body: String| {
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem\">\
<h1>{title}</h1>{body}</body></html>"
        )
    };
    match req.path.as_str() {
        "/checkout/done" => OriginResponse::html(page(
            "Thank you!",
            "<p>Your order is placed. Your slot is free for the next fan.</p><p><a href=\"/\">Back to the shop</a></p>".into(),
        ))
        .with_header("usher-command", "release"),
        p if p.starts_with("/checkout") => OriginResponse::html(page(
            "Checkout",
            format!(
                "<p>You are in. Visitor <code>{}</code>, you waited {} ms.</p>\
<p><a href=\"/checkout/done\">Finish checkout</a> (frees your slot)</p>",
                crate::page::escape(&visitor),
                crate::page::escape(&waited)
            ),
        )),
        _ => OriginResponse::html(page(
            "Demo Tickets",
            "<p>The big show goes on sale now.</p><p><a href=\"/checkout\">Buy tickets</a></p>".into(),
        )),
    }
}
