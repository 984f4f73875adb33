//! The tenancy layer every Foundry server runs behind: authenticate the
//! bearer token locally, authorize the method from its declared access, put
//! the [`Caller`] into request extensions. Health and reflection are the only
//! methods served without a declaration; every other undeclared path is
//! refused before routing (fail closed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use foundry_platform::Error;
use foundry_platform::load::{Deadline, Limits, Load};
use foundry_platform::trace::RequestId;
use http::{Request, Response};
use tower::{Layer, Service};
use uuid::Uuid;

use crate::access::{Access, MethodTable, Scope, granted};
use crate::binding::Binding;
use crate::caller::Caller;
use crate::jwt::PrincipalType;
use crate::verifier::Verifier;

/// Paths served to anyone, outside the declared table: health checks and
/// reflection (so `grpcurl list` and load balancers need no token).
const OPEN_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// What the layer needs, shared by every connection.
#[derive(Debug)]
pub struct Tenancy {
    /// Verifies tokens.
    pub verifier: Arc<Verifier>,
    /// Declared access per method.
    pub methods: MethodTable,
    /// Proxies in front of the server that append to `X-Forwarded-For`
    /// ([`ClientIp`]).
    pub trusted_proxy_hops: u8,
    /// Deadlines and bounds on calls in flight ([`foundry_platform::load`]).
    pub load: Load,
}

/// The caller's address, in request extensions: the connection's peer or,
/// behind `hops` trusted proxies that each append the address they saw to
/// `X-Forwarded-For`, the address the outermost of them saw (the `hops`-th
/// entry from the end of `X-Forwarded-For` followed by the peer). What a
/// client wrote into the header itself comes before that and is ignored;
/// a chain shorter than `hops` gives its first entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

impl ClientIp {
    /// The address of a request from `peer` with `forwarded` in
    /// `X-Forwarded-For`, behind `hops` trusted proxies.
    pub fn of(peer: Option<std::net::IpAddr>, forwarded: Option<&str>, hops: u8) -> Option<Self> {
        if hops == 0 {
            return peer.map(ClientIp);
        }
        let mut chain: Vec<Option<std::net::IpAddr>> = forwarded
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect();
        chain.push(peer);
        let at = chain.len().saturating_sub(1 + usize::from(hops));
        chain[at].or(peer).map(ClientIp)
    }
}

impl Tenancy {
    /// Trusts `hops` proxies in front of the server ([`ClientIp`]).
    #[must_use]
    pub fn with_trusted_proxy_hops(mut self, hops: u8) -> Self {
        self.trusted_proxy_hops = hops;
        self
    }

    /// Runs calls within `limits` ([`foundry_platform::load`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.load = Load::new(limits);
        self
    }
}

impl Tenancy {
    /// Loads the verifier's keys and the method table of every Foundry
    /// proto; refuses to start if any method lacks an access declaration.
    pub async fn new(verifier: Verifier) -> anyhow::Result<Tenancy> {
        // A remote key source may not be up yet (split deployments start in
        // any order): the verifier fetches again on the first unknown kid.
        if let Err(e) = verifier.refresh().await {
            tracing::warn!(error = %e, "token keys not loaded yet; will fetch on first use");
        }
        let methods = MethodTable::from_descriptor_set(foundry_proto::FILE_DESCRIPTOR_SET)?;
        if !methods.undeclared().is_empty() {
            anyhow::bail!(
                "methods without an access declaration: {:?}",
                methods.undeclared()
            );
        }
        Ok(Tenancy {
            verifier: Arc::new(verifier),
            methods,
            trusted_proxy_hops: 0,
            load: Load::new(Limits::default()),
        })
    }
}

/// Where a service deployed apart from identity finds it.
#[derive(Clone, Debug, clap::Args)]
pub struct IdentityArgs {
    /// The identity service (`http://host:port`): its JWKS verifies tokens.
    #[arg(
        long,
        env = "FOUNDRY_IDENTITY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub identity_endpoint: String,
}

impl Tenancy {
    /// The tenancy of a service deployed apart from identity: keys from
    /// identity's `GetJwks` at `identity_endpoint`, refetched every
    /// `refresh`, default expectations.
    pub async fn remote(identity_endpoint: &str, refresh: Duration) -> anyhow::Result<Tenancy> {
        let channel =
            tonic::transport::Channel::from_shared(identity_endpoint.to_owned())?.connect_lazy();
        let verifier = Verifier::new(
            crate::jwt::Expectations::default(),
            Arc::new(crate::verifier::GrpcKeySource::new(channel)),
        )
        .with_refresh_every(refresh);
        Tenancy::new(verifier).await
    }
}

/// Layer constructor.
#[derive(Clone, Debug)]
pub struct TenancyLayer {
    tenancy: Arc<Tenancy>,
}

impl TenancyLayer {
    /// A layer over the given verifier and method table.
    pub fn new(tenancy: Arc<Tenancy>) -> Self {
        Self { tenancy }
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TenancyService {
            inner,
            tenancy: self.tenancy.clone(),
        }
    }
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct TenancyService<S> {
    inner: S,
    tenancy: Arc<Tenancy>,
}

// === impl TenancyService ===

impl<S, B, RB> Service<Request<B>> for TenancyService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tenancy = self.tenancy.clone();
        Box::pin(async move {
            let peer = req
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|c| c.remote_addr())
                .map(|a| a.ip());
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            if let Some(ip) = ClientIp::of(peer, forwarded, tenancy.trusted_proxy_hops) {
                req.extensions_mut().insert(ip);
            }
            let path = req.uri().path();
            if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
                return inner.call(req).await;
            }
            // Load first: a refused call costs no token verification.
            let _server = match tenancy.load.enter() {
                Ok(p) => p,
                Err(e) => return Ok(tonic::Status::from(e).into_http()),
            };
            let deadline = tenancy.load.deadline(req.headers());
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0)
                .unwrap_or_else(Uuid::now_v7);
            let path = path.to_owned();
            let headers = req.headers().clone();
            req.extensions_mut()
                .insert(Deadline(tokio::time::Instant::now() + deadline));
            let method = path.clone();
            let call = async move {
                let caller = match tenancy.admit(&path, &headers, request_id).await {
                    Ok(caller) => caller,
                    Err(e) => return Ok(tonic::Status::from(e).into_http()),
                };
                let _permit = match &caller {
                    Some(c) => match tenancy.load.enter_as(c.claims.org_id, c.principal_id()) {
                        Ok(p) => Some(p),
                        Err(e) => return Ok(tonic::Status::from(e).into_http()),
                    },
                    None => None,
                };
                if let Some(caller) = caller {
                    // On the call's span (`foundry_platform::trace`).
                    if let Some(org) = caller.claims.org_id {
                        tracing::Span::current().record("org_id", tracing::field::display(org));
                    }
                    req.extensions_mut().insert(caller);
                }
                // What the method declares, for handlers that decide
                // again on the caller's standing as it is now
                // (`foundry_outbox::Call::recheck`).
                if let Some(access) = tenancy.methods.get(&path) {
                    req.extensions_mut().insert(access.clone());
                }
                inner.call(req).await
            };
            // Past the deadline the call is dropped where it stands: an
            // open transaction rolls back, nothing is half written.
            match tokio::time::timeout(deadline, call).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(method, ?deadline, "call past its deadline");
                    Ok(tonic::Status::from(Load::expired(deadline)).into_http())
                }
            }
        })
    }
}

impl Tenancy {
    /// Decides whether a request may reach its handler, and as whom.
    pub async fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        request_id: Uuid,
    ) -> Result<Option<Caller>, Error> {
        let Some(access) = self.methods.get(path) else {
            return Err(Error::permission_denied(
                "METHOD_NOT_DECLARED",
                format!("{path} declares no access and is refused"),
            ));
        };
        let token = bearer(headers);
        if access.scope == Scope::Public {
            // A token on a public method is optional; a bad one is ignored
            // rather than refused, as the method does not need it.
            let caller = match token {
                Ok(t) => self.authenticate(t, request_id).await.ok(),
                Err(_) => None,
            };
            return Ok(caller);
        }
        let token = token?;
        let caller = self.authenticate(token, request_id).await?;
        authorize(access, &caller)?;
        Ok(Some(caller))
    }

    async fn authenticate(&self, token: &str, request_id: Uuid) -> Result<Caller, Error> {
        let claims = self
            .verifier
            .verify(token)
            .await
            .map_err(|e| Error::unauthenticated(e.reason(), e.to_string()))?;
        Ok(Caller {
            claims,
            token: Arc::from(token),
            request_id,
        })
    }
}

fn authorize(access: &Access, caller: &Caller) -> Result<(), Error> {
    let ptype = caller.claims.ptype;
    match access.scope {
        Scope::Public => Ok(()),
        Scope::User if ptype == PrincipalType::User => Ok(()),
        Scope::User => Err(Error::permission_denied(
            "USER_REQUIRED",
            "only a user's token may call this method",
        )),
        Scope::Internal if ptype != PrincipalType::Service => Err(Error::permission_denied(
            "INTERNAL_METHOD",
            "only service accounts may call this method",
        )),
        Scope::Internal => permitted(caller, &access.permission),
        Scope::Org => {
            if ptype == PrincipalType::Service || caller.claims.org_id.is_none() {
                return Err(Error::permission_denied(
                    "NO_ACTIVE_ORGANIZATION",
                    "this method needs a token acting in an organization",
                ));
            }
            permitted(caller, &access.permission)?;
            if !access.confined && caller.binding().is_some() {
                return Err(Binding::refusal(
                    "call an organization-wide method (it reads or changes more than its project)",
                ));
            }
            Ok(())
        }
    }
}

/// `MISSING_PERMISSION` unless the token grants `permission` (a role's
/// permission, or a service account's capability).
fn permitted(caller: &Caller, permission: &str) -> Result<(), Error> {
    if granted(&caller.claims.perms, permission) {
        Ok(())
    } else {
        Err(Error::permission_denied(
            "MISSING_PERMISSION",
            format!("the token does not grant {permission}"),
        )
        .with_metadata("permission", permission.to_owned()))
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, Error> {
    let missing = || {
        Error::unauthenticated(
            "TOKEN_MISSING",
            "send `authorization: Bearer <access token>`",
        )
    };
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::ClientIp;

    fn ip(s: &str) -> Option<ClientIp> {
        Some(ClientIp(s.parse().unwrap()))
    }

    #[test]
    fn the_client_is_the_address_the_outermost_trusted_proxy_saw() {
        let peer = Some("10.0.0.9".parse().unwrap());
        let xff = Some("198.51.100.1, 203.0.113.7");
        assert_eq!(ClientIp::of(peer, xff, 0), ip("10.0.0.9"));
        assert_eq!(ClientIp::of(peer, xff, 1), ip("203.0.113.7"));
        assert_eq!(ClientIp::of(peer, xff, 2), ip("198.51.100.1"));
        // Fewer entries than hops: the first one there is.
        assert_eq!(ClientIp::of(peer, xff, 5), ip("198.51.100.1"));
        // No header behind a proxy: the peer; garbage at the trusted spot: the peer.
        assert_eq!(ClientIp::of(peer, None, 1), ip("10.0.0.9"));
        assert_eq!(ClientIp::of(peer, Some("x, not-an-ip"), 1), ip("10.0.0.9"));
        assert_eq!(ClientIp::of(None, None, 0), None);
    }
}
