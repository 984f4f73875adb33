//! A gRPC service as a table of its methods: each unary method is a function
//! of its request, routed by the path the proto gives it
//! (`foundry_proto::aip::Unary`).
//!
//! tonic's generated server wants one trait impl per service, in which every
//! method is a wrapper of the same few lines; a resource whose standard
//! methods are generic functions would repeat those wrappers in every file.
//! Here a service is built from the functions themselves:
//!
//! ```ignore
//! Methods::new(state)
//!     .unary(create::<Workstream, pb::CreateWorkstreamRequest>)
//!     .unary(list_workstreams)
//!     .complete()
//! ```
//!
//! [`Methods::complete`] checks the table against the proto's list of the
//! service's methods, so a method left unrouted stops the server at start
//! (where tonic's trait would not compile), and each request type routes to
//! its own method only (its `Unary::Service` must be the service's).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use foundry_proto::aip::{Service, Unary};
use tonic::body::Body;
use tonic::server::NamedService;
use tracing::Instrument;

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;
type Handler = Arc<dyn Fn(http::Request<Body>) -> Answer + Send + Sync>;

/// The methods of the service `N` routed so far, each handed a clone of the
/// state `S`.
pub struct Methods<N, S> {
    state: S,
    table: HashMap<&'static str, Handler>,
    service: PhantomData<fn() -> N>,
}

impl<N: Service, S: Clone + Send + Sync + 'static> Methods<N, S> {
    /// No method yet; every handler gets `state`.
    pub fn new(state: S) -> Self {
        Methods {
            state,
            table: HashMap::new(),
            service: PhantomData,
        }
    }

    /// Routes the method that takes `Q` to `f`, called with the state and
    /// the decoded request in a span named after the method.
    ///
    /// # Panics
    /// When the method is routed already (a programming error, at start).
    #[must_use]
    pub fn unary<Q, F, Fut>(mut self, f: F) -> Self
    where
        Q: Unary<Service = N>,
        F: Fn(S, tonic::Request<Q>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Q::Reply>, tonic::Status>> + Send + 'static,
    {
        let state = self.state.clone();
        let handler: Handler = Arc::new(move |req| {
            let (f, state) = (f.clone(), state.clone());
            let span = tracing::info_span!("rpc", method = Q::RPC);
            Box::pin(
                async move {
                    let codec = tonic_prost::ProstCodec::<Q::Reply, Q>::default();
                    let call = tower::service_fn(move |r| f(state.clone(), r));
                    Ok(tonic::server::Grpc::new(codec).unary(call, req).await)
                }
                .instrument(span),
            )
        });
        let path = Q::PATH;
        assert!(
            self.table.insert(path, handler).is_none(),
            "{path} is routed twice"
        );
        self
    }

    /// Routes the method that takes `Q` to `f`, called with what
    /// [`Called::called`] makes of the state and the request (`f` is not
    /// called when that fails: its error is the answer); `f`'s message is
    /// the response.
    ///
    /// # Panics
    /// When the method is routed already (a programming error, at start).
    #[must_use]
    pub fn call<Q, C, F, Fut, E>(self, f: F) -> Self
    where
        Q: Unary<Service = N>,
        C: Called<S, Q> + Send,
        F: Fn(C) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Q::Reply, E>> + Send + 'static,
        E: Into<tonic::Status>,
    {
        self.unary(move |state: S, req: tonic::Request<Q>| {
            let f = f.clone();
            async move {
                let called = C::called(state, req)?;
                f(called)
                    .await
                    .map(tonic::Response::new)
                    .map_err(Into::into)
            }
        })
    }

    /// The service, once every unary method of the proto's is routed.
    ///
    /// # Panics
    /// When one is not, naming it (a programming error, at start).
    #[must_use]
    pub fn complete(self) -> Served<N> {
        for method in N::METHODS {
            let path = format!("/{}/{method}", N::NAME);
            assert!(
                self.table.contains_key(path.as_str()),
                "{path} is not routed"
            );
        }
        Served {
            table: Arc::new(self.table),
            service: PhantomData,
        }
    }
}

/// What a method's function takes in place of the state and the raw
/// request (for [`Methods::call`]): made from both before the function runs
/// (the caller checked, the message taken out of its envelope), or the
/// error the call answers instead.
pub trait Called<S, Q>: Sized {
    /// It for `req`, made to the service whose state is `state`.
    ///
    /// # Errors
    /// The status the call answers without running (no caller, say).
    fn called(state: S, req: tonic::Request<Q>) -> Result<Self, tonic::Status>;
}

/// A service whose every method is routed: what tonic's `Routes` serves.
pub struct Served<N> {
    table: Arc<HashMap<&'static str, Handler>>,
    service: PhantomData<fn() -> N>,
}

impl<N> Clone for Served<N> {
    fn clone(&self) -> Self {
        Served {
            table: self.table.clone(),
            service: PhantomData,
        }
    }
}

impl<N: Service> NamedService for Served<N> {
    const NAME: &'static str = N::NAME;
}

impl<N> tower::Service<http::Request<Body>> for Served<N> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Answer {
        match self.table.get(req.uri().path()) {
            Some(handler) => handler(req),
            // What tonic's generated servers answer: UNIMPLEMENTED, empty.
            None => Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use foundry_proto::foundry::delivery::v1 as pb;
    use foundry_proto::service::delivery_v1::WorkstreamService;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    use super::*;

    async fn get(
        (): (),
        req: tonic::Request<pb::GetWorkstreamRequest>,
    ) -> Result<tonic::Response<pb::Workstream>, tonic::Status> {
        Ok(tonic::Response::new(pb::Workstream {
            id: req.into_inner().id,
            ..Default::default()
        }))
    }

    #[test]
    #[should_panic(
        expected = "/foundry.delivery.v1.WorkstreamService/CreateWorkstream is not routed"
    )]
    fn a_service_with_a_method_left_unrouted_does_not_start() {
        let _ = Methods::<WorkstreamService, ()>::new(())
            .unary(get)
            .complete();
    }

    #[test]
    #[should_panic(
        expected = "/foundry.delivery.v1.WorkstreamService/GetWorkstream is routed twice"
    )]
    fn a_method_routed_twice_does_not_start() {
        let _ = Methods::<WorkstreamService, ()>::new(())
            .unary(get)
            .unary(get);
    }

    #[tokio::test]
    async fn a_path_the_service_does_not_have_is_unimplemented() {
        let served = Served::<WorkstreamService> {
            table: Arc::new(HashMap::new()),
            service: PhantomData,
        };
        let req = http::Request::builder()
            .uri("/foundry.delivery.v1.WorkstreamService/Nothing")
            .body(Body::default())
            .expect("a request");
        let Ok(res) = served.oneshot(req).await;
        let status = tonic::Status::from_header_map(res.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    /// A caller named by the `x-name` header, or `UNAUTHENTICATED`.
    struct Named;

    impl Called<Arc<AtomicBool>, pb::GetWorkstreamRequest> for Named {
        fn called(
            ran: Arc<AtomicBool>,
            req: tonic::Request<pb::GetWorkstreamRequest>,
        ) -> Result<Self, tonic::Status> {
            ran.store(req.metadata().contains_key("x-name"), Ordering::SeqCst);
            match req.metadata().get("x-name") {
                Some(_) => Ok(Named),
                None => Err(tonic::Status::unauthenticated("no name")),
            }
        }
    }

    async fn named(Named: Named) -> Result<pb::Workstream, tonic::Status> {
        Ok(pb::Workstream::default())
    }

    /// `GetWorkstream` with `id: "x"`, framed, named `name` if any.
    fn framed(name: Option<&str>) -> http::Request<Body> {
        let frame = String::from_utf8(vec![0, 0, 0, 0, 3, 0x0a, 1, b'x']).expect("ascii");
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/foundry.delivery.v1.WorkstreamService/GetWorkstream")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(name) = name {
            req = req.header("x-name", name);
        }
        req.body(Body::new(frame)).expect("a request")
    }

    #[tokio::test]
    async fn a_called_method_answers_what_its_call_refuses_and_runs_when_it_does_not() {
        let ran = Arc::new(AtomicBool::new(false));
        let served = Methods::<WorkstreamService, _>::new(ran.clone())
            .call(named)
            .table;
        let served = Served::<WorkstreamService> {
            table: Arc::new(served),
            service: PhantomData,
        };
        let Ok(res) = served.clone().oneshot(framed(None)).await;
        let status = tonic::Status::from_header_map(res.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "no name");
        assert!(!ran.load(Ordering::SeqCst));

        let Ok(res) = served.oneshot(framed(Some("ada"))).await;
        assert_eq!(res.status(), http::StatusCode::OK);
        assert!(
            tonic::Status::from_header_map(res.headers()).is_none(),
            "no error before the message"
        );
        assert!(ran.load(Ordering::SeqCst));
    }
}
