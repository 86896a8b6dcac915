//! The agent desk in a browser (issue 13): an agent takes calls over WebRTC and fills in
//! the work order on one page, `/desk`.
//!
//! | module | owns |
//! |---|---|
//! | [`protocol`] | the WebSocket messages of `docs/desk-protocol.md`, version 1 |
//! | [`session`] | one desk's decisions (pure): its SIP user agent, the browser's frames, heartbeats, the media check, and what a desk that dies does |
//!
//! This module also owns the hand-over between the two I/O layers: the HTTP layer
//! (`api::desk_ws`) authenticates the socket and claims the agent's one desk
//! ([`Desks::claim`]); the runtime (`runtime::desk`) runs the session, its WebRTC
//! peer and its relay. Neither imports the other.

pub mod protocol;
pub mod session;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use protocol::{ClientMessage, ServerMessage};

/// What the socket tells the desk.
#[derive(Debug)]
pub enum FromBrowser {
    Message(ClientMessage),
    /// The socket closed or broke; no frame will follow.
    Gone(String),
}

/// What the desk tells the socket.
#[derive(Debug)]
pub enum ToBrowser {
    Frame(ServerMessage),
    /// Close with this code (after the frames before it).
    Close(u16),
}

/// A socket that passed `hello`, handed to the runtime to run.
#[derive(Debug)]
pub struct DeskConnection {
    pub agent: String,
    pub from_browser: mpsc::Receiver<FromBrowser>,
    pub to_browser: mpsc::Sender<ToBrowser>,
    /// Held for the desk's life: the agent's one desk.
    pub claim: DeskClaim,
}

/// The desks running now, and the way to start one.
#[derive(Clone, Debug)]
pub struct Desks {
    launch: mpsc::Sender<DeskConnection>,
    live: Arc<Mutex<HashSet<String>>>,
}

impl Desks {
    /// The handle the HTTP layer keeps and the receiver the runtime reads.
    pub fn channel(capacity: usize) -> (Desks, mpsc::Receiver<DeskConnection>) {
        let (launch, receiver) = mpsc::channel(capacity);
        (
            Desks {
                launch,
                live: Arc::default(),
            },
            receiver,
        )
    }

    /// The agent's desk, unless one is open already (a second tab, another PC): two
    /// desks would register two phones for one agent.
    pub fn claim(&self, agent: &str) -> Option<DeskClaim> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(agent.to_owned()).then(|| DeskClaim {
            agent: agent.to_owned(),
            live: Arc::clone(&self.live),
        })
    }

    /// Hands a desk to the runtime; false when the engine is stopping.
    pub async fn launch(&self, connection: DeskConnection) -> bool {
        self.launch.send(connection).await.is_ok()
    }

    /// Agents with a desk open now.
    pub fn open(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// An agent's claim on their one desk, released when dropped.
#[derive(Debug)]
pub struct DeskClaim {
    agent: String,
    live: Arc<Mutex<HashSet<String>>>,
}

impl Drop for DeskClaim {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&self.agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_has_one_desk_until_it_closes() {
        let (desks, _receiver) = Desks::channel(1);
        let first = desks.claim("1001").expect("first desk");
        assert!(desks.claim("1001").is_none(), "a second desk is refused");
        let other = desks.claim("1002").expect("another agent's desk");
        assert_eq!(desks.open(), 2);
        drop(first);
        assert!(desks.claim("1001").is_some(), "free again once closed");
        drop(other);
    }
}
