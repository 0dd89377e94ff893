//! What usher's tokens say. A visitor token holds a place in a zone's queue (its rank travels in
//! the signed token, so a lost queue entry is rebuilt from it); an access token holds a session;
//! a challenge token holds a proof-of-work puzzle (its `vid` is the puzzle's seed and the place
//! it earns, its `rank` the arrival the place will carry); an identity token says who the
//! visitor is (its `vid` is the place every device of that identity shares).

use crate::admission::{QueueKey, VisitorId};
use serde::{Deserialize, Serialize};

/// Which of the tokens this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A place in the queue.
    Visitor,
    /// A session in the protected zone.
    Access,
    /// A proof-of-work puzzle: solved, it becomes a place (never a place itself).
    Challenge,
    /// Who the visitor is, as the shop said (`Usher-Identity`, or a signed link): its `vid`
    /// is the identity's keyed id, its `zone` the zone it is for (`*`: every zone). Never a
    /// place itself.
    Identity,
}

/// JWT claims of both token kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (`tokens.issuer`).
    pub iss: String,
    /// Token kind.
    pub typ: TokenKind,
    /// Zone the token is for.
    pub zone: String,
    /// The visitor's random id.
    pub vid: VisitorId,
    /// Arrival in ms: the FIFO key.
    pub rank: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch (for access tokens: the session's ledger bucket).
    pub exp: u64,
    /// When the visitor was admitted, ms (access tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<u64>,
    /// A priority place (a redeemed priority code): placed just behind the cursor, so it goes
    /// in before the main line, and never sent to the back for having been passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pri: bool,
}

impl Claims {
    /// The visitor's place in the queue.
    pub fn queue_key(&self) -> QueueKey {
        QueueKey {
            rank: self.rank,
            visitor: self.vid,
        }
    }
}
