//! The one translation of a grant into what the provider is asked: the
//! scope, the RFC 8707 resource (or what the provider takes instead), and
//! the few provider-specific parameters a refresh token depends on.
//!
//! It is a function of three things only: the resolved [`Translation`]
//! (the `[upstream] profile` with every key the operator set over it), the
//! [`Grant`] (what the client was granted: its scopes within the ceiling,
//! the resource, whether it may refresh) and the [`Leg`] of the flow. The
//! sign-in, the code exchange and every refresh call it, so a grant is
//! translated identically each time ("works on sign-in, fails on
//! reconnect" was the refresh forwarding the client's raw scope).

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The scopes OpenID Connect defines: never qualified with a resource's
/// prefix, since every provider takes them bare.
pub const OIDC_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The `prompt` values OpenID Connect registers (Core §3.1.2.1 and
/// Initiating User Registration §4). Others are provider extensions a
/// client on the internet does not get to drive (Entra's `admin_consent`).
const PROMPT_VALUES: [&str; 5] = ["none", "login", "consent", "select_account", "create"];

/// `[upstream]` as it bears on the translation: the profile's defaults with
/// the operator's keys over them, resolved once at load so no handler ever
/// matches on the profile's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The profile the defaults came from (reported, never matched on).
    pub profile: Profile,
    /// How the resource reaches the provider.
    pub resource_parameter: ResourceParameter,
    /// Scopes naming each resource at the provider, by resource (keys
    /// normalised as URLs).
    pub resource_scopes: BTreeMap<String, String>,
    /// Add `offline_access` when the client may refresh.
    pub offline_access: bool,
    /// Prefix bare custom scopes with the mapped resource's identifier
    /// (`mcp` → `api://app/mcp`).
    pub qualify_scopes: bool,
    /// Refuse a resource with no `resource_scopes` line (`invalid_target`)
    /// rather than let the provider guess the audience.
    pub resource_requires_scope: bool,
    /// Ask for `access_type=offline` (and the consent screen, unless the
    /// client chose a prompt) when the client may refresh.
    pub access_type_offline: bool,
    /// The resources the proxy grants tokens for (`[resource]`), normalised;
    /// `None` when no `[resource]` is configured: then any is passed on.
    pub allowed_resources: Option<Vec<String>>,
}

impl Default for Translation {
    fn default() -> Self {
        Translation::for_profile(Profile::Generic)
    }
}

/// Which step of the flow the provider is asked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg<'a> {
    /// The authorization request, with the client's `prompt`.
    Authorize {
        /// The client's `prompt`, if any.
        prompt: Option<&'a str>,
    },
    /// The code exchange at the token endpoint.
    CodeExchange,
    /// A refresh: `scope` is what the client asked for, already checked to
    /// narrow the grant; `None` keeps the grant's (RFC 6749 §6).
    Refresh {
        /// The narrowed scope, or `None`.
        scope: Option<&'a str>,
    },
}

/// What the client was granted, as sealed since the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// Its scopes within the ceiling, space-separated, before translation.
    pub scope: &'a str,
    /// The resource it was granted (an allowed one, normalised).
    pub resource: Option<&'a str>,
    /// Whether it may refresh (see [`may_refresh`]).
    pub may_refresh: bool,
}

/// What the provider is asked at one leg.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamRequest {
    /// The translated scope; `None` when nothing is to be sent.
    pub scope: Option<String>,
    /// Further parameters: `resource` or `audience`, `access_type`, `prompt`.
    pub params: Vec<(&'static str, String)>,
}

/// A resource the proxy does not grant: `invalid_target` (RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute URI without a fragment.
    #[error("the resource must be an absolute URI without a fragment")]
    Invalid,
    /// Not one of the `[resource]` entries.
    #[error("the resource is not one this authorization server issues tokens for")]
    NotAllowed,
    /// The profile needs a scope for it and none is configured.
    #[error(
        "the identity provider cannot be asked for this resource: no scope is configured for it"
    )]
    Unmapped,
    /// A token request naming another resource than the grant's.
    #[error("the resource is not the one this grant was made for")]
    NotGranted,
}

/// Whether `scope` is one of OpenID Connect's.
fn is_oidc(scope: &str) -> bool {
    OIDC_SCOPES.contains(&scope)
}

/// A resource indicator in its one comparable form: an absolute URI
/// without a fragment (RFC 8707 §2), as the URL parser writes it.
///
/// # Errors
///
/// [`TargetError::Invalid`] for anything else.
pub fn normalise_resource(resource: &str) -> Result<String, TargetError> {
    match url::Url::parse(resource) {
        Ok(url) if url.fragment().is_none() && !url.cannot_be_a_base() => Ok(url.into()),
        _ => Err(TargetError::Invalid),
    }
}

/// Whether a client may refresh: its document lists the `refresh_token`
/// grant, or its granted scopes (within the ceiling, so a ceiling without
/// `offline_access` is not bypassed this way) include `offline_access`.
pub fn may_refresh(grant_types: &[String], granted_scope: Option<&str>) -> bool {
    grant_types.iter().any(|grant| grant == "refresh_token")
        || granted_scope.is_some_and(|scope| scope.split(' ').any(|s| s == "offline_access"))
}

impl Translation {
    /// The defaults of `profile` (see the README's profile table for the
    /// provider documentation behind each).
    pub fn for_profile(profile: Profile) -> Translation {
        let generic = Translation {
            profile,
            resource_parameter: ResourceParameter::Forward,
            resource_scopes: BTreeMap::new(),
            offline_access: false,
            qualify_scopes: false,
            resource_requires_scope: false,
            access_type_offline: false,
            allowed_resources: None,
        };
        match profile {
            Profile::Generic => generic,
            Profile::Entra => Translation {
                resource_parameter: ResourceParameter::Drop,
                offline_access: true,
                qualify_scopes: true,
                resource_requires_scope: true,
                ..generic
            },
            Profile::Okta => Translation {
                resource_parameter: ResourceParameter::Drop,
                offline_access: true,
                ..generic
            },
            Profile::Google => Translation {
                resource_parameter: ResourceParameter::Drop,
                access_type_offline: true,
                ..generic
            },
            Profile::Keycloak => generic,
            Profile::Auth0 => Translation {
                resource_parameter: ResourceParameter::Audience,
                offline_access: true,
                ..generic
            },
        }
    }

    /// The resource a request names, checked against the allowed ones and
    /// normalised: what is sealed into the grant.
    ///
    /// # Errors
    ///
    /// [`TargetError::Invalid`] or [`TargetError::NotAllowed`].
    pub fn allowed_resource(&self, requested: &str) -> Result<String, TargetError> {
        // The allowed ones are normalised already, and normalising is
        // idempotent: a request naming one exactly needs no parse.
        if let Some(allowed) = &self.allowed_resources
            && allowed.iter().any(|resource| resource == requested)
        {
            return Ok(requested.to_owned());
        }
        let resource = normalise_resource(requested)?;
        match &self.allowed_resources {
            Some(allowed) if !allowed.contains(&resource) => Err(TargetError::NotAllowed),
            _ => Ok(resource),
        }
    }

    /// What the provider is asked at `leg` for `grant`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Unmapped`] when the profile needs a scope for the
    /// grant's resource and `resource_scopes` has none.
    pub fn translate(
        &self,
        grant: &Grant<'_>,
        leg: Leg<'_>,
    ) -> Result<UpstreamRequest, TargetError> {
        let mapping = grant
            .resource
            .and_then(|resource| self.resource_scopes.get(resource));
        if grant.resource.is_some() && mapping.is_none() && self.resource_requires_scope {
            return Err(TargetError::Unmapped);
        }
        let scope = match leg {
            Leg::Authorize { .. } => Some(self.scope(grant.scope, mapping, grant.may_refresh)),
            Leg::CodeExchange => None,
            Leg::Refresh { scope } => scope.map(|asked| self.scope(asked, mapping, true)),
        };
        let mut params = Vec::new();
        if let Some(resource) = grant.resource {
            match (self.resource_parameter, leg) {
                (ResourceParameter::Forward, _) => params.push(("resource", resource.to_owned())),
                // Auth0's `audience` exists on the authorization request only.
                (ResourceParameter::Audience, Leg::Authorize { .. }) => {
                    params.push(("audience", resource.to_owned()));
                }
                _ => {}
            }
        }
        if let Leg::Authorize { prompt } = leg {
            let mut prompt = prompt.map(|prompt| {
                prompt
                    .split(' ')
                    .filter(|value| PROMPT_VALUES.contains(value))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            prompt = prompt.filter(|prompt| !prompt.is_empty());
            if self.access_type_offline && grant.may_refresh {
                params.push(("access_type", "offline".to_owned()));
                // Google issues a refresh token only from its consent
                // screen; a client that chose a prompt keeps its choice.
                prompt.get_or_insert_with(|| "consent".to_owned());
            }
            if let Some(prompt) = prompt {
                params.push(("prompt", prompt));
            }
        }
        Ok(UpstreamRequest {
            scope: scope.filter(|scope| !scope.is_empty()),
            params,
        })
    }

    /// The scope sent upstream for the client's `asked` scopes: each once,
    /// in the order first named.
    fn scope(&self, asked: &str, mapping: Option<&String>, may_refresh: bool) -> String {
        let asked = asked.split(' ').filter(|scope| !scope.is_empty());
        let mapped = mapping
            .map_or("", String::as_str)
            .split(' ')
            .filter(|s| !s.is_empty());
        // Borrowed from the request and the configuration; only a
        // qualified scope is made anew.
        let mut scopes: Vec<Cow<'_, str>> = Vec::new();
        if self.qualify_scopes {
            // The resource's identifier: the first non-OIDC scope of its
            // line, without the `/.default` an operator may have written.
            let prefix = mapped
                .clone()
                .find(|scope| !is_oidc(scope))
                .map(|scope| scope.strip_suffix("/.default").unwrap_or(scope));
            for scope in asked {
                match prefix {
                    Some(prefix) if !is_oidc(scope) && !scope.contains('/') => {
                        scopes.push(Cow::Owned(format!("{prefix}/{scope}")));
                    }
                    _ => scopes.push(Cow::Borrowed(scope)),
                }
            }
            scopes.extend(mapped.filter(|scope| is_oidc(scope)).map(Cow::Borrowed));
            if let Some(prefix) = prefix {
                let of_resource = |scope: &Cow<'_, str>| {
                    scope
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
                };
                if !scopes.iter().any(of_resource) {
                    // Nothing of the resource asked: all it was granted.
                    scopes.push(Cow::Owned(format!("{prefix}/.default")));
                }
            }
        } else {
            scopes.extend(asked.map(Cow::Borrowed));
            scopes.extend(mapped.map(Cow::Borrowed));
        }
        if self.offline_access && may_refresh {
            scopes.push(Cow::Borrowed("offline_access"));
        }
        let mut joined = String::new();
        for (n, scope) in scopes.iter().enumerate() {
            // A handful of scopes: a look back costs less than a set.
            if scopes[..n].contains(scope) {
                continue;
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(scope);
        }
        joined
    }
}

/// `[upstream] profile`: which provider the proxy stands in front of. A
/// profile is only a set of defaults for the other `[upstream]` keys,
/// resolved into a [`Translation`] at load.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::EnumString,
    strum::VariantNames,
    strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum Profile {
    /// A textbook OAuth 2.1 / RFC 8707 provider: today's behaviour.
    #[default]
    Generic,
    /// Microsoft Entra ID (the v2.0 endpoints).
    Entra,
    /// An Okta custom authorization server.
    Okta,
    /// Google's OAuth 2.0 for web server applications.
    Google,
    /// Keycloak.
    Keycloak,
    /// Auth0.
    Auth0,
}

impl Profile {
    /// The profile's name as configured.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// `[upstream] resource_parameter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum ResourceParameter {
    /// Pass `resource` to the provider (authorization and token requests).
    #[default]
    Forward,
    /// Remove it (Entra ID's v2 endpoint refuses it; Okta and Google ignore it).
    Drop,
    /// Send it as `audience` on the authorization request (Auth0).
    Audience,
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "https://mcp.example/mcp";
    const APP: &str = "api://6b1f4c2e";

    fn entra(mapping: &str) -> Translation {
        let mut translation = Translation::for_profile(Profile::Entra);
        translation
            .resource_scopes
            .insert(RESOURCE.to_owned(), mapping.to_owned());
        translation.allowed_resources = Some(vec![RESOURCE.to_owned()]);
        translation
    }

    fn grant<'a>(scope: &'a str, resource: Option<&'a str>, may_refresh: bool) -> Grant<'a> {
        Grant {
            scope,
            resource,
            may_refresh,
        }
    }

    fn sign_in(translation: &Translation, grant: &Grant<'_>) -> UpstreamRequest {
        translation
            .translate(grant, Leg::Authorize { prompt: None })
            .unwrap()
    }

    #[test]
    fn entra_qualifies_bare_custom_scopes_and_keeps_oidc_scopes_bare() {
        let translation = entra(APP);
        let request = sign_in(
            &translation,
            &grant("openid mcp profile", Some(RESOURCE), true),
        );
        assert_eq!(
            request.scope.as_deref(),
            Some("openid api://6b1f4c2e/mcp profile offline_access")
        );
        // Entra refuses `resource`: it is dropped, the scope names the audience.
        assert_eq!(request.params, vec![]);
        // Nothing of the resource asked: `.default`; a `/.default` in the
        // operator's line is the same App ID URI.
        for line in [
            APP,
            "api://6b1f4c2e/.default",
            "api://6b1f4c2e/.default offline_access",
        ] {
            let request = sign_in(&entra(line), &grant("openid", Some(RESOURCE), false));
            let expected = if line.ends_with("offline_access") {
                "openid offline_access api://6b1f4c2e/.default"
            } else {
                "openid api://6b1f4c2e/.default"
            };
            assert_eq!(request.scope.as_deref(), Some(expected), "{line}");
        }
        // Already qualified scopes stay as they are.
        let request = sign_in(
            &translation,
            &grant("api://6b1f4c2e/mcp", Some(RESOURCE), false),
        );
        assert_eq!(request.scope.as_deref(), Some("api://6b1f4c2e/mcp"));
    }

    #[test]
    fn entra_refuses_a_resource_without_a_scope_before_the_provider() {
        let mut translation = Translation::for_profile(Profile::Entra);
        translation.allowed_resources = Some(vec![RESOURCE.to_owned()]);
        assert_eq!(
            translation.translate(
                &grant("openid", Some(RESOURCE), true),
                Leg::Authorize { prompt: None }
            ),
            Err(TargetError::Unmapped)
        );
        // No resource asked: nothing to map.
        assert!(
            translation
                .translate(
                    &grant("openid", None, true),
                    Leg::Authorize { prompt: None }
                )
                .is_ok()
        );
    }

    #[test]
    fn a_client_may_refresh_by_its_document_or_its_granted_scope() {
        let refresh = ["authorization_code".to_owned(), "refresh_token".to_owned()];
        let code_only = ["authorization_code".to_owned()];
        assert!(may_refresh(&refresh, None));
        assert!(may_refresh(&code_only, Some("openid offline_access")));
        assert!(!may_refresh(&code_only, Some("openid offline_accessx")));
        assert!(!may_refresh(&code_only, None));
    }

    #[test]
    fn offline_access_is_added_only_for_a_client_that_may_refresh() {
        let okta = Translation::for_profile(Profile::Okta);
        assert_eq!(
            sign_in(&okta, &grant("openid mcp:tools", Some(RESOURCE), true))
                .scope
                .as_deref(),
            Some("openid mcp:tools offline_access")
        );
        assert_eq!(
            sign_in(&okta, &grant("openid mcp:tools", Some(RESOURCE), false))
                .scope
                .as_deref(),
            Some("openid mcp:tools")
        );
        let generic = Translation::for_profile(Profile::Generic);
        assert_eq!(
            sign_in(&generic, &grant("openid", None, true))
                .scope
                .as_deref(),
            Some("openid")
        );
    }

    #[test]
    fn the_resource_goes_as_resource_audience_or_not_at_all() {
        let grant = grant("openid", Some(RESOURCE), false);
        let forwarded = Translation::for_profile(Profile::Keycloak);
        for leg in [
            Leg::Authorize { prompt: None },
            Leg::CodeExchange,
            Leg::Refresh { scope: None },
        ] {
            assert_eq!(
                forwarded.translate(&grant, leg).unwrap().params,
                vec![("resource", RESOURCE.to_owned())]
            );
        }
        let auth0 = Translation::for_profile(Profile::Auth0);
        assert_eq!(
            auth0
                .translate(&grant, Leg::Authorize { prompt: None })
                .unwrap()
                .params,
            vec![("audience", RESOURCE.to_owned())]
        );
        assert_eq!(
            auth0.translate(&grant, Leg::CodeExchange).unwrap().params,
            vec![]
        );
        for dropped in [Profile::Okta, Profile::Google, Profile::Entra] {
            let mut translation = Translation::for_profile(dropped);
            translation.resource_requires_scope = false;
            assert_eq!(sign_in(&translation, &grant).params, vec![], "{dropped:?}");
        }
    }

    #[test]
    fn google_asks_for_offline_access_and_the_consent_screen_only_for_refresh() {
        let google = Translation::for_profile(Profile::Google);
        let request = sign_in(&google, &grant("openid email", None, true));
        assert_eq!(
            request.params,
            vec![
                ("access_type", "offline".to_owned()),
                ("prompt", "consent".to_owned())
            ]
        );
        // The client's own prompt is kept; a client that cannot refresh asks for nothing.
        let own = google
            .translate(
                &grant("openid", None, true),
                Leg::Authorize {
                    prompt: Some("none"),
                },
            )
            .unwrap();
        assert_eq!(
            own.params,
            vec![
                ("access_type", "offline".to_owned()),
                ("prompt", "none".to_owned())
            ]
        );
        assert_eq!(
            sign_in(&google, &grant("openid", None, false)).params,
            vec![]
        );
    }

    /// Entra's `admin_consent` (and any other extension) never reaches the
    /// provider from a client; `consent` is the user's own consent screen.
    #[test]
    fn only_registered_prompt_values_are_forwarded() {
        let translation = entra(APP);
        let prompt = |asked| {
            translation
                .translate(
                    &grant("openid", None, false),
                    Leg::Authorize {
                        prompt: Some(asked),
                    },
                )
                .unwrap()
                .params
        };
        assert_eq!(prompt("consent"), vec![("prompt", "consent".to_owned())]);
        assert_eq!(prompt("admin_consent"), vec![]);
        assert_eq!(
            prompt("login admin_consent select_account"),
            vec![("prompt", "login select_account".to_owned())]
        );
    }

    #[test]
    fn a_refresh_is_translated_like_the_sign_in_and_the_code_exchange_sends_no_scope() {
        let translation = entra(APP);
        let grant = grant("openid mcp", Some(RESOURCE), true);
        let signed_in = sign_in(&translation, &grant);
        let refreshed = translation
            .translate(
                &grant,
                Leg::Refresh {
                    scope: Some("openid mcp"),
                },
            )
            .unwrap();
        assert_eq!(refreshed.scope, signed_in.scope);
        let narrowed = translation
            .translate(&grant, Leg::Refresh { scope: Some("mcp") })
            .unwrap();
        assert_eq!(
            narrowed.scope.as_deref(),
            Some("api://6b1f4c2e/mcp offline_access")
        );
        assert_eq!(
            translation
                .translate(&grant, Leg::Refresh { scope: None })
                .unwrap()
                .scope,
            None
        );
        assert_eq!(
            translation
                .translate(&grant, Leg::CodeExchange)
                .unwrap()
                .scope,
            None
        );
    }

    #[test]
    fn generic_appends_the_resources_scopes_as_written() {
        let mut generic = Translation::for_profile(Profile::Generic);
        generic
            .resource_scopes
            .insert(RESOURCE.to_owned(), "api://mcp/.default".to_owned());
        assert_eq!(
            sign_in(&generic, &grant("openid openid", Some(RESOURCE), true))
                .scope
                .as_deref(),
            Some("openid api://mcp/.default")
        );
        assert_eq!(sign_in(&generic, &grant("", None, false)).scope, None);
    }

    #[test]
    fn resources_are_compared_normalised_and_checked_against_the_allowed_ones() {
        let translation = entra(APP);
        assert_eq!(
            translation.allowed_resource(RESOURCE),
            Ok(RESOURCE.to_owned())
        );
        assert_eq!(
            translation.allowed_resource("HTTPS://MCP.example/mcp"),
            Ok(RESOURCE.to_owned())
        );
        assert_eq!(
            translation.allowed_resource("https://mcp.example/other"),
            Err(TargetError::NotAllowed)
        );
        for invalid in ["mcp", "/mcp", "https://mcp.example/mcp#x", "urn-no-colon"] {
            assert_eq!(
                translation.allowed_resource(invalid),
                Err(TargetError::Invalid),
                "{invalid}"
            );
        }
        // No [resource] configured: any absolute URI is passed on.
        let open = Translation::for_profile(Profile::Generic);
        assert_eq!(
            open.allowed_resource("https://elsewhere.example/"),
            Ok("https://elsewhere.example/".to_owned())
        );
    }
}
