//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers' annotations.
//!
//! The document and the router come from the same registration ([`super::routes`]): a
//! handler is added to both with one `routes!` call, so neither can list a route the other
//! lacks. The tests below check that anyway, against the routes the built router really
//! serves and the methods it really allows.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rivetr",
        description = "Rivetr's REST API. Every `/api` route except `/api/health`, \
                       `/api/openapi.json` and `/api/session` needs `Authorization: Bearer \
                       <token>`, or the dashboard's session cookie (from `POST /api/session`; \
                       a change made with the cookie needs an `Origin` naming this host or an \
                       `X-Rivetr-Request` header, else 403). Errors are \
                       `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "meta", description = "Health and this document"),
        (name = "tokens", description = "API tokens"),
        (name = "session", description = "The dashboard's sign-in: a token exchanged for a session cookie"),
        (name = "events", description = "A live stream of what changes: apps and deployments"),
        (name = "webhooks", description = "Forge webhooks and their secrets"),
        (name = "certificates", description = "Where each domain's TLS certificate stands"),
        (name = "databases", description = "Managed databases: PostgreSQL, MariaDB, MySQL, Redis"),
        (name = "backups", description = "Backups of managed databases: now or on a schedule, downloaded, restored"),
        (name = "notifications", description = "Channels for messages about deployments, certificates, containers and backups; their deliveries"),
        (name = "previews", description = "Previews of pull requests: a running copy of each, at its own host"),
        (name = "nodes", description = "The nodes of the swarm apps run on (`[runtime] engine = \"swarm\"`): their state, labels and tasks; drain and activate"),
    )
)]
pub(super) struct ApiDoc;

/// Declares the `bearer` scheme the protected operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rvt_ and 64 hex digits")
                    .build(),
            ),
        );
    }
}

/// Adds to every operation the answers that come from the layers in front of its handler
/// rather than from the handler, unless its annotation already describes that status (an
/// operation's own words win):
///
/// - 400 on every `/api` operation: a credential in the query string
///   ([`super::auth::refuse_query_tokens`]), a path parameter that does not parse, a malformed
///   body ([`super::extract`]);
/// - 401 and 429 (with `Retry-After`) on protected operations: no valid token, too many
///   failed authentications from the address ([`super::auth::require_token`]); 403 on the
///   protected ones that change something (the dashboard's cookie without `Origin` or
///   `X-Rivetr-Request`);
/// - 413, 415 and 422 on operations with a JSON body: over the limit, not JSON, a value that
///   is not acceptable.
///
/// Kept in one place so a handler added later is described as completely as the others
/// without anyone remembering to (schemathesis, `scripts/schemathesis.sh`, checks each
/// answer against the document).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ObjectBuilder, Ref, ResponseBuilder, Type, content::ContentBuilder};

        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let protected = super::auth::is_protected(path);
            let under_api = path == "/api" || path.starts_with("/api/");
            let operations = [
                (&mut item.get, false),
                (&mut item.head, false),
                (&mut item.options, false),
                (&mut item.trace, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (operation, changes) in operations {
                let Some(op) = operation.as_mut() else {
                    continue;
                };
                let has_body = op.request_body.is_some();
                let has_path_params = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
                });
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, response: ResponseBuilder| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| response.build().into());
                };
                if under_api || has_body || has_path_params {
                    add(
                        "400",
                        error(
                            "A request that cannot be read: a malformed body or path parameter, \
                             or a credential in the query string",
                        ),
                    );
                }
                if protected {
                    add("401", error("No valid token (or session cookie) was sent"));
                    if changes {
                        add(
                            "403",
                            error(
                                "A change made with the dashboard's session cookie, without an \
                                 `Origin` naming this host or an `X-Rivetr-Request` header",
                            ),
                        );
                    }
                    add(
                        "429",
                        error(
                            "Too many failed authentications from this address: only a valid \
                             token goes through until `Retry-After` seconds have passed",
                        )
                        .header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                                .description(Some("Seconds until the next attempt is counted"))
                                .build(),
                        ),
                    );
                }
                if protected || path.starts_with("/webhooks/") {
                    add(
                        "503",
                        error(
                            "The database is locked by another process and did not come free \
                             within the request's budget (1 s): try again after `Retry-After` \
                             seconds",
                        )
                        .header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                                .description(Some("Seconds to wait before trying again"))
                                .build(),
                        ),
                    );
                    add("507", error("The file system holding the database is full"));
                }
                if has_body {
                    add(
                        "413",
                        error("The body is larger than the limit (1 MiB for JSON bodies)"),
                    );
                    add(
                        "415",
                        error("The body is not sent as `Content-Type: application/json`"),
                    );
                    add("422", error("A value that is not acceptable, named"));
                }
            }
        }
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        // The routes' operations join the document after `ApiDoc`'s own modifiers ran, so
        // the one that walks the operations runs here.
        let mut doc = super::routes().into_openapi();
        CommonResponses.modify(&mut doc);
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json", body = Object))
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use crate::api::test_support::TestApi;

    /// (path, methods) of every operation in the document.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| {
                        [
                            "get", "post", "put", "patch", "delete", "head", "options", "trace",
                        ]
                        .contains(&k.as_str())
                    })
                    .map(|k| k.to_uppercase())
                    .collect();
                (path.clone(), methods)
            })
            .collect()
    }

    /// The paths the built router has routes for, read from its `Debug` form (axum offers no
    /// other way to list them). If axum changes that form the test fails rather than passing
    /// on an empty list.
    fn served_paths(router: &axum::Router) -> BTreeSet<String> {
        let debug = format!("{router:?}");
        // The fallback has a router of its own (`/` and a catch-all); only the routes count.
        let (routes, _) = debug
            .split_once("fallback_router")
            .unwrap_or_else(|| panic!("no fallback_router in the router's Debug output: {debug}"));
        let mut paths = BTreeSet::new();
        for piece in routes.split('"') {
            if piece.starts_with('/') && !piece.contains(' ') {
                paths.insert(piece.to_owned());
            }
        }
        assert!(
            paths.contains("/api/health"),
            "cannot read the routes from the router's Debug output: {debug}"
        );
        paths
    }

    /// A concrete URL for a templated path.
    fn concrete(path: &str) -> String {
        path.replace("{provider}", "github")
            .replace("{app}", "no-such-app")
            .replace("{id}", "999999")
    }

    #[tokio::test]
    async fn the_document_lists_exactly_the_routes_the_router_serves() {
        let api = TestApi::new().await;
        let documented = documented();
        let served = served_paths(&api.router);
        let documented_paths: BTreeSet<String> = documented.keys().cloned().collect();
        assert_eq!(served, documented_paths, "router paths vs documented paths");

        for (path, methods) in &documented {
            // An unsupported method makes axum answer 405 with the methods the route has.
            let res = api
                .router
                .clone()
                .oneshot(
                    Request::builder()
                        .method(Method::from_bytes(b"PROPFIND").unwrap())
                        .uri(concrete(path))
                        .header("authorization", format!("Bearer {}", api.token))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            let allow: BTreeSet<String> = res
                .headers()
                .get("allow")
                .unwrap()
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| m != "HEAD" || methods.contains("HEAD"))
                .collect();
            assert_eq!(&allow, methods, "methods served vs documented for {path}");
        }
    }

    #[test]
    fn protected_operations_declare_the_bearer_scheme_and_public_ones_do_not() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let secured = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                assert_eq!(
                    secured,
                    crate::api::auth::is_protected(path),
                    "{method} {path}: security in the document vs the gate"
                );
            }
        }
    }
}
