//! One HTTP/1.1 connection to a document's origin, kept open between fetches.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;

use super::target::Target;
#[cfg(feature = "https")]
use super::tls;

/// Opens a connection to `target`: TCP, then TLS for `https`, then HTTP/1.1.
pub(super) async fn open(
    target: &Target,
    connect_timeout: Duration,
    #[cfg(feature = "https")] roots: Option<&tls::Roots>,
) -> Result<Connection, String> {
    #[cfg(not(feature = "https"))]
    if target.tls {
        return Err("https:// needs the `https` feature of eac-accessor".into());
    }
    let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
    let tcp = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => {
            return Err(format!(
                "cannot connect within {} ms",
                connect_timeout.as_millis()
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    #[cfg(feature = "https")]
    if target.tls {
        let tls_handshake = tls::connect(roots, &target.host, tcp);
        let tls = match tokio::time::timeout(connect_timeout, tls_handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(why)) => return Err(why),
            Err(_) => {
                return Err(format!(
                    "no TLS handshake within {} ms",
                    connect_timeout.as_millis()
                ));
            }
        };
        return handshake(hyper_util::rt::TokioIo::new(tls), target).await;
    }
    handshake(hyper_util::rt::TokioIo::new(tcp), target).await
}

/// Aborts the task that drives a connection when the connection is dropped.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An open HTTP/1.1 connection to one origin, kept between fetches while the server
/// keeps it open: a poll then costs no new TCP (or TLS) handshake.
pub(super) struct Connection {
    tls: bool,
    host: String,
    port: u16,
    pub(super) sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    /// Dropping the connection closes it.
    _driver: Driver,
}

impl Connection {
    pub(super) fn is_to(&self, target: &Target) -> bool {
        (self.tls, self.host.as_str(), self.port) == target.origin()
    }
}

/// `request` again, to send it a second time.
pub(super) fn copy_request(request: &Request<Empty<Bytes>>) -> Request<Empty<Bytes>> {
    let mut copy = Request::new(Empty::new());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

async fn handshake<T>(io: T, target: &Target) -> Result<Connection, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = Driver(tokio::spawn(async move {
        let _ = connection.await;
    }));
    Ok(Connection {
        tls: target.tls,
        host: target.host.clone(),
        port: target.port,
        sender,
        _driver: driver,
    })
}
