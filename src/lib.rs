//! usher: a self-hosted virtual waiting room. A Pingora reverse proxy in front of any shop that
//! queues visitors fairly when the protected paths are full and lets them in first-in-first-out
//! at the rate and concurrency the shop can take.
//!
//! Module map (`docs/architecture.md`), leaves first: [`clock`] (the only time source),
//! [`request`] (the canonical view of a request), [`admission`] (pure exchanger and ledger
//! math), [`page`] (the waiting page and status document), [`config`] (TOML -> validated
//! model), [`tls`] (the visitors' certificates), [`token`] (JWTs and cookies), [`onsale`] (schedules), [`zone`] (request -> zone),
//! [`gate`] (the one decision table), [`store`] (state and change feed), [`exchanger`] (the
//! admission tick against the store), [`metrics`], [`event_log`] (JSON lines of what happened), [`report`] (`usher report`: a sale from the event log), [`room`] (carries out decisions),
//! [`proxy`] (Pingora glue), [`service`] (composition root), [`demo`] (the quick start's shop).

pub mod admin;
pub mod admission;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod defence;
pub mod demo;
pub mod event_log;
pub mod exchanger;
pub mod gate;
pub mod lifecycle;
pub mod metrics;
pub mod onsale;
pub mod page;
pub mod proxy;
pub mod report;
pub mod request;
pub mod room;
pub mod service;
pub mod store;
pub mod tls;
pub mod token;
pub mod zone;
