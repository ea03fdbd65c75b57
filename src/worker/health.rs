//! What `/readyz` reports: consuming on open channels, the broker not blocking our
//! publishing, the database answering, and commits not waiting for its synchronous standby.

use crate::store::availability::Availability;
use crate::store::commits::{Commits, STALLED_ON_STANDBY};
use lapin::{Channel, ConnectionStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Readiness {
    availability: Arc<Availability>,
    session: Mutex<Option<BrokerSession>>,
}

/// The broker side of the current session.
pub struct BrokerSession {
    /// The session's consume and publish channels (the router's too); all must stay open.
    pub channels: Vec<Channel>,
    /// The publishing connection, which the broker blocks during a resource alarm.
    pub publishing: ConnectionStatus,
}

impl Readiness {
    pub fn new(availability: Arc<Availability>) -> Self {
        Self {
            availability,
            session: Mutex::new(None),
        }
    }

    pub fn set_session(&self, session: BrokerSession) {
        *self.session.lock().expect("readiness lock") = Some(session);
    }

    /// Marks the broker side not ready (draining or disconnected).
    pub fn clear_session(&self) {
        *self.session.lock().expect("readiness lock") = None;
    }

    /// The commits in flight.
    pub fn commits(&self) -> &Commits {
        self.availability.commits()
    }

    /// `Err` names what is not ready.
    pub async fn check(&self) -> Result<(), String> {
        self.known_state()?;
        // Probing here also closes the gate before a batch has to fail to notice an outage.
        match tokio::time::timeout(Duration::from_secs(3), self.availability.probe()).await {
            Ok(answered) => answered.map_err(|e| format!("database: {e}")),
            Err(_) => Err("database: no answer within 3s".into()),
        }
    }

    /// What is known without a round trip: consuming on open channels, not blocked, the
    /// database not known to be away. Feeds the `contact_import_ready` gauge.
    pub fn known_state(&self) -> Result<(), String> {
        if let Some(oldest) = self.availability.commits().stalled() {
            return Err(format!(
                "{STALLED_ON_STANDBY} (the oldest for {} s); taking no new batches, and \
                 answering none until its commit is replicated",
                oldest.as_secs()
            ));
        }
        if let Some(outage) = self.availability.outage() {
            return Err(format!(
                "database unavailable, not taking batches: {outage}"
            ));
        }
        {
            let session = self.session.lock().expect("readiness lock");
            let Some(session) = session.as_ref() else {
                return Err("not consuming".into());
            };
            if let Some(channel) = session.channels.iter().find(|c| !c.status().connected()) {
                return Err(format!("broker channel {} is not open", channel.id()));
            }
            if session.publishing.blocked() {
                return Err("the broker blocks publishing (memory or disk alarm)".into());
            }
        }
        Ok(())
    }
}
