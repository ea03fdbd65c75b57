//! The shutdown signal as a type: fired once (SIGTERM, SIGINT, or a fatal error), observed by
//! every task that holds a [`Shutdown`](crate::shutdown::Shutdown).

use tokio::sync::watch;

/// Fires the shutdown.
#[derive(Clone)]
pub struct Trigger(watch::Sender<bool>);

/// Observes the shutdown; cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and observer.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Fires the shutdown; firing again does nothing more.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been fired (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means every trigger is gone: nobody can fire it any more, so wait forever.
        if rx.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Fires `trigger` on the first SIGTERM or SIGINT.
pub async fn fire_on_signal(trigger: Trigger) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received, draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, draining"),
    }
    trigger.fire();
}
