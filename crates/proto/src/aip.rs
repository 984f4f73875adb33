//! The standard methods' requests (AIP-131 Get, 133 Create, 134 Update,
//! 135 Delete) as traits, so that one generic handler serves every
//! resource. The build script implements them for every message that
//! follows the AIP shape (`CreateGoalRequest { goal, request_id }`,
//! `UpdateGoalRequest { goal, update_mask }`, `GetGoalRequest { id }`,
//! `DeleteGoalRequest { id, etag }`, and the resource `Goal { id, .., etag }`);
//! a message that does not is left without, and its handler reads it itself.

use prost_types::FieldMask;

/// A resource message: its `id` and `etag` (AIP-154).
pub trait ResourceMessage {
    /// `id`.
    fn id(&self) -> &str;
    /// `etag`.
    fn etag(&self) -> &str;
}

/// AIP-133: `Create<X>Request { <x>, request_id }`.
pub trait CreateRequest {
    /// The resource message it carries.
    type Resource: ResourceMessage + Default;
    /// The method (`CreateGoal`): what a request id is scoped to.
    const METHOD: &'static str;
    /// The resource's field (`goal`): where its violations are
    /// (`goal.title`).
    const FIELD: &'static str;

    /// The resource to create, if set.
    fn resource(&self) -> Option<&Self::Resource>;
    /// Its `request_id` (AIP-155).
    fn request_id(&self) -> &str;
}

/// AIP-131: `Get<X>Request { id }`.
pub trait GetRequest {
    /// `id`.
    fn id(&self) -> &str;
}

/// AIP-134: `Update<X>Request { <x>, update_mask }`.
pub trait UpdateRequest {
    /// The resource message it carries.
    type Resource: ResourceMessage + Default;
    /// The resource's field (`goal`): where its violations are
    /// (`goal.title`).
    const FIELD: &'static str;

    /// The resource with its new values (its `id` and `etag` say which and
    /// at which version), if set.
    fn resource(&self) -> Option<&Self::Resource>;
    /// The fields to change.
    fn update_mask(&self) -> Option<&FieldMask>;
}

/// AIP-135: `Delete<X>Request { id, etag }`.
pub trait DeleteRequest {
    /// `id`.
    fn id(&self) -> &str;
    /// `etag` (empty: any version).
    fn etag(&self) -> &str;
}

/// AIP-132: `List<Xs>Request { .., page_size, page_token }`.
pub trait ListRequest {
    /// `page_size` (0: the default).
    fn page_size(&self) -> i32;
    /// `page_token` (empty: the first page).
    fn page_token(&self) -> &str;
}

/// AIP-132 under one parent: a list request whose one id field names the
/// parent (`ListWorkstreamsRequest { program_id, page_size, page_token }`).
pub trait ChildListRequest: ListRequest {
    /// The parent's field (`program_id`).
    const PARENT: &'static str;
    /// Its value.
    fn parent(&self) -> &str;
}

/// AIP-132: `List<Xs>Response { <xs>, next_page_token }`.
pub trait ListResponse {
    /// The message listed.
    type Item;

    /// A page of `items`, and the token of the next (empty on the last).
    fn of(items: Vec<Self::Item>, next_page_token: String) -> Self;
}

/// A gRPC service (`foundry.delivery.v1.TaskService`): the build script
/// writes a marker type per service, in `crate::service`.
pub trait Service: 'static {
    /// Its full name.
    const NAME: &'static str;
    /// Its unary methods (`CreateTask`), every one of which a server of it
    /// must route.
    const METHODS: &'static [&'static str];
}

/// The request of one unary method: what it answers and where it is routed.
/// The build script implements it for every request message that exactly
/// one method takes.
pub trait Unary: prost::Message + Default + Send + Sync + 'static {
    /// The method's response (`()` for `google.protobuf.Empty`).
    type Reply: prost::Message + Default + Send + Sync + 'static;
    /// The service it belongs to.
    type Service: Service;
    /// The method's name (`CreateTask`).
    const RPC: &'static str;
    /// Its HTTP/2 path (`/foundry.delivery.v1.TaskService/CreateTask`).
    const PATH: &'static str;
}

/// A resource whose service has the four standard methods that read and
/// write one resource (AIP-131, 133, 134, 135), by their request messages.
pub trait Standard: ResourceMessage + Default + prost::Message + Sized {
    /// `Create<X>Request`.
    type Create: Unary<Reply = Self> + CreateRequest<Resource = Self>;
    /// `Get<X>Request`.
    type Get: Unary<Reply = Self, Service = <Self::Create as Unary>::Service> + GetRequest;
    /// `Update<X>Request`.
    type Update: Unary<Reply = Self, Service = <Self::Create as Unary>::Service>
        + UpdateRequest<Resource = Self>;
    /// `Delete<X>Request`.
    type Delete: Unary<Reply = (), Service = <Self::Create as Unary>::Service> + DeleteRequest;
}

/// A resource message with the stamp every stored resource carries: `id`,
/// `created_by`, `create_time`, `update_time` and `etag`.
pub trait Stamped: Default {
    /// The message with only those fields set.
    fn stamped(
        id: String,
        created_by: String,
        create_time: Option<prost_types::Timestamp>,
        update_time: Option<prost_types::Timestamp>,
        etag: String,
    ) -> Self;
}
