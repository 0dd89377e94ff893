//! usher: a self-hosted virtual waiting room. A Pingora reverse proxy in front of any shop that
//! queues visitors fairly when the protected paths are full and lets them in first-in-first-out
//! at the rate and concurrency the shop can take.
//!
//! Module map (DESIGN §8): [`config`] (TOML -> validated model), [`clock`] (the only time source),
//! [`zone`] (request -> zone), [`token`] (JWTs and cookies), [`admission`] (pure exchanger and
//! ledger math), [`exchanger`] (the admission tick against the store), [`gate`] (pure decision),
//! [`store`] (state and change feed), [`room`] (carries
//! out decisions, pages and status), [`proxy`] (Pingora glue), [`metrics`], [`service`]
//! (composition root), [`demo`] (the quick start's shop).

pub mod admission;
pub mod clock;
pub mod config;
pub mod demo;
pub mod exchanger;
pub mod gate;
pub mod metrics;
pub mod onsale;
pub mod proxy;
pub mod room;
pub mod service;
pub mod store;
pub mod token;
pub mod zone;
