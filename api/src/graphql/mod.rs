//! The GraphQL API: schema (queries, mutations, subscriptions), its HTTP and WebSocket
//! endpoints, the offline GraphiQL page, and the protections around it (depth and complexity
//! limits, page sizes, body limit, per-token rate limit, switchable introspection).
//!
//! The schema is independent of HTTP: [`schema`] builds it over [`Services`], and
//! [`sdl`] renders the contract checked into `schemas/schema.graphql` without any service.

pub mod access;
pub mod context;
pub mod error;
pub mod graphiql;
pub mod history;
pub mod http;
pub mod mutation;
pub mod query;
pub mod ratelimit;
pub mod records;
pub mod subscription;
pub mod types;

use async_graphql::{Schema, SchemaBuilder};

pub use context::{GraphqlConfig, Services, Viewer};
pub use error::{ApiError, ApiResult};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

/// The executable schema.
pub type ApiSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest selection accepted. GraphiQL's own introspection query nests 14 levels; the
/// recursive introspection types are the only way to go deeper.
pub const MAX_DEPTH: usize = 16;

/// Largest query complexity accepted: one point per field, a page counting its fields once per
/// record asked for.
pub const MAX_COMPLEXITY: usize = 5_000;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
}

/// The schema over running services.
pub fn schema(services: Services) -> ApiSchema {
    let introspection = services.config.introspection;
    let builder = builder().data(services);
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema's SDL, as checked into `schemas/schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
