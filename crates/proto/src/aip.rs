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

/// AIP-132: `List<Xs>Response { <xs>, next_page_token }`.
pub trait ListResponse {
    /// The message listed.
    type Item;

    /// A page of `items`, and the token of the next (empty on the last).
    fn of(items: Vec<Self::Item>, next_page_token: String) -> Self;
}
