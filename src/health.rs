//! What `/readyz` reports: the broker channels are open and a database connection can be had.

use deadpool_postgres::Pool;
use lapin::Channel;
use std::sync::Mutex;
use std::time::Duration;

pub struct Readiness {
    pool: Pool,
    channels: Mutex<Vec<Channel>>,
}

impl Readiness {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            channels: Mutex::new(Vec::new()),
        }
    }

    /// The channels that must stay open for the worker to be ready (consume and publish).
    pub fn set_channels(&self, channels: Vec<Channel>) {
        *self.channels.lock().expect("readiness lock") = channels;
    }

    /// Marks the broker side not ready (draining or disconnected).
    pub fn clear_channels(&self) {
        self.channels.lock().expect("readiness lock").clear();
    }

    /// `Err` names what is not ready.
    pub async fn check(&self) -> Result<(), String> {
        {
            let channels = self.channels.lock().expect("readiness lock");
            if channels.is_empty() {
                return Err("not consuming".into());
            }
            if let Some(channel) = channels.iter().find(|c| !c.status().connected()) {
                return Err(format!("broker channel {} is not open", channel.id()));
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), self.pool.get()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("database: {e}")),
            Err(_) => Err("database: no connection within 2s".into()),
        }
    }
}
