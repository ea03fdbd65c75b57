//! Connecting to RabbitMQ from an `AMQP_URL`: `amqp://` or `amqps://`, with RabbitMQ's own
//! URI query parameters for TLS (`cacertfile`, `certfile`, `keyfile`,
//! `server_name_indication`, `verify`) beside lapin's (`heartbeat`, `connection_timeout`, …).
//! Several URLs separated by commas are a cluster's nodes, as RabbitMQ's clients take a
//! list of addresses: every connection tries them in a random order, so that many workers
//! spread over the nodes and a lost node's workers find the others.

use crate::tls::{self, Identity, Roots, TlsSettings, Verify};
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

/// Heartbeat asked for when `AMQP_URL` sets none: a silent network cut is noticed within two
/// intervals, where the broker's default (60 s) would leave batches hanging for minutes.
const DEFAULT_HEARTBEAT_SECS: u16 = 15;
/// TCP connect timeout when `AMQP_URL` sets none.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The whole handshake: a peer that accepts the socket and then says nothing must not hang
/// the reconnect loop.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL cannot be used as it is; retrying cannot help.
    #[error("invalid AMQP_URL: {0}")]
    Url(String),
    /// A TLS file or setting of the URL is unusable; retrying cannot help.
    #[error("the TLS settings of AMQP_URL: {0}")]
    Tls(#[from] tls::TlsError),
    /// The server's certificate was refused (wrong CA, expired, another host's).
    #[error("connecting to RabbitMQ at {endpoint}: {problem}")]
    Certificate {
        /// `host:port` of the broker.
        endpoint: String,
        /// What is wrong with the certificate.
        problem: String,
    },
    /// No node of a list of several answered; each one's error, in the order tried.
    #[error("no broker node answered: {}", .0.join("; "))]
    NoNode(Vec<String>),
    /// The broker could not be reached or refused the connection.
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    /// The broker accepted the socket and then said nothing.
    #[error("no answer from the broker within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
}

/// Where and how to connect, read from one URL.
#[derive(Debug)]
pub struct Endpoint {
    uri: AMQPUri,
    /// For `amqps://`: how the server is verified, and the name sent and checked.
    tls: Option<(TlsSettings, String)>,
}

impl Endpoint {
    /// Reads `url`, with our defaults where it sets no heartbeat or connect timeout.
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        // lapin's message quotes the whole URL, password included: say what is wrong instead.
        let mut uri: AMQPUri = url.parse().map_err(|_| {
            ConnectError::Url(
                "not an amqp:// or amqps:// URL (amqp[s]://user:password@host:port/vhost)".into(),
            )
        })?;
        uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
        uri.query
            .connection_timeout
            .get_or_insert(DEFAULT_CONNECT_TIMEOUT_MS);
        let parsed = url::Url::parse(url).map_err(|e| ConnectError::Url(e.to_string()))?;
        let param = |name: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let tls_params = [
            "cacertfile",
            "certfile",
            "keyfile",
            "verify",
            "server_name_indication",
        ];
        let tls = match uri.scheme {
            AMQPScheme::AMQP => {
                if let Some(name) = tls_params.iter().find(|p| param(p).is_some()) {
                    return Err(ConnectError::Url(format!(
                        "{name} is a TLS parameter: use an amqps:// URL"
                    )));
                }
                None
            }
            AMQPScheme::AMQPS => {
                let verify = match param("verify").as_deref() {
                    None | Some("verify_peer") => Verify::Full,
                    Some("verify_none") => Verify::Nothing,
                    Some(other) => {
                        return Err(ConnectError::Url(format!(
                            "verify={other}: RabbitMQ knows verify_peer and verify_none"
                        )));
                    }
                };
                let identity = match (param("certfile"), param("keyfile")) {
                    (Some(certificate), Some(key)) => Some(Identity {
                        certificate: PathBuf::from(certificate),
                        key: PathBuf::from(key),
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(ConnectError::Url(
                            "certfile and keyfile go together (a client certificate and its key)"
                                .into(),
                        ));
                    }
                };
                let server_name = match param("server_name_indication") {
                    Some(name) if name != "disable" => name,
                    _ => uri.authority.host.clone(),
                };
                let settings = TlsSettings {
                    roots: param("cacertfile").map_or(Roots::System, |f| Roots::File(f.into())),
                    verify,
                    identity,
                };
                Some((settings, server_name))
            }
        };
        Ok(Self { uri, tls })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.uri.authority.host, self.uri.authority.port)
    }

    /// The broker user this URL logs in as, which is what the broker accepts as a message's
    /// `user_id`: the URL's user name (`guest` when it names none, as RabbitMQ's clients
    /// have it). `None` with `auth_mechanism=external`, where the client certificate names
    /// the user.
    pub fn login_user(&self) -> Option<&str> {
        match self.uri.query.auth_mechanism {
            Some(SASLMechanism::External) => None,
            _ => Some(&self.uri.authority.userinfo.username),
        }
    }

    /// Whether the server's certificate goes unchecked (`verify=verify_none`).
    pub fn unverified(&self) -> bool {
        matches!(&self.tls, Some((s, _)) if s.verify == Verify::Nothing)
    }
}

/// The nodes of `AMQP_URL`: one URL, or several separated by commas. A comma splits only
/// where the next URL starts (`amqp://` or `amqps://`, after optional spaces), so a password
/// may hold one.
pub fn endpoints(urls: &str) -> Result<Vec<Endpoint>, ConnectError> {
    let mut nodes: Vec<String> = Vec::new();
    for piece in urls.split(',') {
        let piece = piece.trim_start();
        let starts_a_url = piece.starts_with("amqp://") || piece.starts_with("amqps://");
        match nodes.last_mut() {
            Some(url) if !starts_a_url => {
                url.push(',');
                url.push_str(piece);
            }
            _ => nodes.push(piece.to_owned()),
        }
    }
    nodes
        .iter()
        .map(|url| Endpoint::parse(url.trim()))
        .collect()
}

/// Opens a connection named `name` (visible in the management UI and `rabbitmqctl`) to the
/// first node of `AMQP_URL` that answers, trying them in a random order.
pub async fn connect(urls: &str, name: &str) -> Result<Connection, ConnectError> {
    let mut nodes = endpoints(urls)?;
    if nodes.len() == 1 {
        return connect_to(&nodes[0], name).await;
    }
    fastrand::shuffle(&mut nodes);
    let mut failures = Vec::new();
    for node in &nodes {
        match connect_to(node, name).await {
            Ok(connection) => return Ok(connection),
            // Wrong for every node alike: trying the others cannot help.
            Err(e @ (ConnectError::Url(_) | ConnectError::Tls(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(broker = %node.address(), error = %e, "broker node did not answer; trying the next");
                failures.push(format!("{}: {e}", node.address()));
            }
        }
    }
    Err(ConnectError::NoNode(failures))
}

/// Opens a connection to one node.
async fn connect_to(endpoint: &Endpoint, name: &str) -> Result<Connection, ConnectError> {
    if endpoint.unverified() {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                broker = %endpoint.address(),
                "AMQP_URL says verify=verify_none: the broker's certificate is not checked, \
                 and anyone on the network path can pose as the broker"
            );
        });
    }
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connecting = async {
        match &endpoint.tls {
            None => Connection::connect_uri(endpoint.uri.clone(), properties).await,
            Some((settings, server_name)) => {
                let tls = Arc::new(tls::client_config(settings)?);
                connect_tls(endpoint.uri.clone(), tls, server_name.clone(), properties).await
            }
        }
        .map_err(ConnectError::from)
    };
    let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| ConnectError::Timeout)?;
    connected.map_err(|e| match &e {
        ConnectError::Amqp(amqp) => match tls::describe_certificate_error(amqp) {
            Some(problem) => ConnectError::Certificate {
                endpoint: endpoint.address(),
                problem,
            },
            None => e,
        },
        _ => e,
    })
}

/// lapin's handshake over our own TLS stream: lapin's built-in TLS cannot take a custom
/// verifier, a client certificate from files or another server name.
async fn connect_tls(
    uri: AMQPUri,
    tls: Arc<rustls::ClientConfig>,
    server_name: String,
    properties: ConnectionProperties,
) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    let connect = move |uri: AMQPUri, runtime| {
        let (tls, server_name) = (tls.clone(), server_name.clone());
        async move {
            let addresses: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
                    .await?
                    .collect();
            let plain = AsyncTcpStream::connect(&runtime, addresses).await?;
            Ok(plain
                .into_rustls(&RustlsConnector::from(tls), &server_name)
                .await?)
        }
    };
    Connection::connector(uri, runtime, connect, properties).await
}

impl From<tls::TlsError> for lapin::Error {
    fn from(e: tls::TlsError) -> Self {
        std::io::Error::other(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_names_several_nodes_and_a_password_may_hold_a_comma() {
        let nodes = endpoints(
            "amqp://u:p,w@node1:5672/%2f,amqps://u:p@node2:5671/%2f?cacertfile=/ca.pem, \
             amqp://node3/%2f",
        )
        .unwrap();
        let addresses: Vec<String> = nodes.iter().map(Endpoint::address).collect();
        assert_eq!(addresses, ["node1:5672", "node2:5671", "node3:5672"]);
        assert_eq!(nodes[0].uri.authority.userinfo.password, "p,w");
        assert!(nodes[1].tls.is_some() && nodes[2].tls.is_none());
        assert_eq!(endpoints("amqp://one/%2f").unwrap().len(), 1);
        assert!(matches!(
            endpoints("amqp://one/%2f,amqps://two/%2f?verify=sometimes"),
            Err(ConnectError::Url(_))
        ));
    }

    #[test]
    fn a_url_without_heartbeat_gets_the_default_and_an_explicit_one_is_kept() {
        let plain = Endpoint::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(plain.uri.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(
            plain.uri.query.connection_timeout,
            Some(DEFAULT_CONNECT_TIMEOUT_MS)
        );
        assert!(plain.tls.is_none());
        let tuned = Endpoint::parse("amqp://127.0.0.1:5672/%2f?heartbeat=2").unwrap();
        assert_eq!(tuned.uri.query.heartbeat, Some(2));
        assert!(matches!(
            Endpoint::parse("http://x"),
            Err(ConnectError::Url(_))
        ));
    }

    #[test]
    fn amqps_reads_rabbitmqs_tls_query_parameters() {
        let system = Endpoint::parse("amqps://u:p@broker.example:5671/%2f").unwrap();
        let (settings, name) = system.tls.unwrap();
        assert_eq!(
            (
                settings.roots,
                settings.verify,
                settings.identity,
                name.as_str()
            ),
            (Roots::System, Verify::Full, None, "broker.example")
        );
        let full = Endpoint::parse(
            "amqps://broker:5671/%2f?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem\
             &server_name_indication=rabbit.internal&heartbeat=5",
        )
        .unwrap();
        assert_eq!(full.uri.query.heartbeat, Some(5));
        let (settings, name) = full.tls.unwrap();
        assert_eq!(settings.roots, Roots::File("/ca.pem".into()));
        assert_eq!(
            settings.identity,
            Some(Identity {
                certificate: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        assert_eq!(name, "rabbit.internal");
        assert!(
            Endpoint::parse("amqps://b/%2f?verify=verify_none")
                .unwrap()
                .unverified()
        );
    }

    #[test]
    fn tls_parameters_that_cannot_work_are_refused() {
        for url in [
            "amqp://b/%2f?cacertfile=/ca.pem",
            "amqps://b/%2f?verify=sometimes",
            "amqps://b/%2f?certfile=/c.pem",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(ConnectError::Url(_))),
                "{url}"
            );
        }
    }
}
