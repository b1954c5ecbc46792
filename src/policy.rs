//! The operator's policy: which CIMD clients are allowed, warned about or
//! denied, which pre-registered upstream client each is mapped onto, and the
//! ceiling on the scopes it may ask for.
//!
//! Rules are tried in order and the first that matches decides: its
//! `client_id` glob matches and, when it has `require_statement_from`, the
//! client's software statement verified and came from one of those issuers
//! (see [`crate::trust`]). Clients no rule matches get `default_action`, so
//! "vouched for by our registry: allow; everyone else: warn" is one rule and
//! the default. On top of that,
//! a client whose only redirect URIs are on loopback gets at least the
//! `loopback_only_redirects` action, whatever its rule says: anyone can
//! present a well-known client's URL and receive its code on their own
//! local port (CIMD-RULES 17), so a rule that trusts the domain does not
//! vouch for the person holding the loopback listener.

use globset::GlobMatcher;

use crate::client_id::ClientIdUrl;
use crate::metadata::ClientMetadata;

/// What the policy does with a client. Ordered from least to most strict.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// Proceed without asking.
    Allow,
    /// Proceed after showing the user who is asking.
    Warn,
    /// Refuse.
    Deny,
}

impl Action {
    /// The action as written in configuration and reports.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A glob over client_id URLs, e.g. `https://*.example.com/**`.
///
/// `*` and `?` never match `/`, and `**` matches across path segments. This
/// is sound only because client_ids are strict (see [`crate::client_id`]):
/// the authority always ends at the first `/`, with no userinfo, fragment,
/// backslash or other spelling a parser would rewrite, so a `*` in the host
/// position can only ever match within the host.
#[derive(Debug, Clone)]
pub struct ClientIdPattern {
    source: String,
    matcher: GlobMatcher,
}

/// Two patterns are the same when they are written the same.
impl PartialEq for ClientIdPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl ClientIdPattern {
    /// Compiles a pattern; it must start with `https://` and name a host.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let Some(rest) = pattern.strip_prefix("https://") else {
            return Err(format!("must start with \"https://\", found {pattern:?}"));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("must name a host, found {pattern:?}"));
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|error| format!("not a valid glob ({error}): {pattern:?}"))?;
        Ok(ClientIdPattern {
            source: pattern.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the client_id matches, compared as the exact string received.
    pub fn matches(&self, client_id: &ClientIdUrl) -> bool {
        self.matcher.is_match(client_id.as_str())
    }
}

/// Why the policy reached its decision; the consent page and logs show these.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A configured rule matched (its index and pattern).
    Rule {
        /// The rule's position in `[[policy.rules]]`, from 0.
        index: usize,
        /// The rule's `client_id` pattern.
        pattern: String,
    },
    /// No rule matched: `default_action` applied (an unknown domain).
    Default,
    /// Every redirect URI is on loopback, which raised the action.
    LoopbackOnlyRedirects,
    /// The client's software statement verified: this issuer vouches for it.
    Vouched {
        /// The `[[trust.issuers]]` name.
        issuer: String,
    },
    /// The client registered itself (`/register`): `policy.registration`
    /// applied, with the tier at this index when one matched.
    SelfRegistered {
        /// The `[[policy.registration.tiers]]` entry, from 0, if one matched.
        #[serde(skip_serializing_if = "Option::is_none")]
        tier: Option<usize>,
    },
}

/// The outcome of applying the policy to a valid client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The upstream client to map onto, when one is configured.
    pub upstream_client: Option<String>,
    /// The scope ceiling, when the rule sets one.
    pub scopes: Option<Vec<String>>,
    /// Why, in the order the reasons applied.
    pub reasons: Vec<Reason>,
}

/// `[policy]`: the operator's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// The action for clients no rule matches.
    pub default_action: Action,
    /// The upstream client used when the matching rule names none.
    pub default_upstream_client: Option<String>,
    /// The least strict action for clients whose only redirect URIs are on loopback.
    pub loopback_only_redirects: Action,
    /// When the consent page is shown.
    pub interstitial: Interstitial,
    /// What `/token` does with a grant whose client document changed what
    /// the user agreed to trust.
    pub on_metadata_change: OnMetadataChange,
    /// `new_client_warning`: the extra warning for a client few people of
    /// the organisation have used yet (off when `None`); see `inventory`.
    pub new_client_warning: Option<NewClientWarning>,
    /// Ordered rules; the first match wins.
    pub rules: Vec<RuleConfig>,
    /// `[policy.registration]`: clients that registered themselves.
    pub registration: RegistrationPolicy,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_action: Action::Warn,
            default_upstream_client: None,
            loopback_only_redirects: Action::Warn,
            interstitial: Interstitial::Warn,
            on_metadata_change: OnMetadataChange::Refuse,
            new_client_warning: None,
            rules: Vec::new(),
            registration: RegistrationPolicy::default(),
        }
    }
}

/// `policy.new_client_warning` (counted by `inventory`): a client is "new to the organisation"
/// until `until_users` distinct users have completed a sign-in with it or
/// it was first seen `until_days` days ago, whichever comes first. While
/// it is, its consent page says so, and an `allow` shows the page too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewClientWarning {
    /// Distinct users (the provider's `sub`, counted as digests).
    pub until_users: u64,
    /// Days since the client was first seen.
    pub until_days: u64,
}

/// `[policy] on_metadata_change`: what `/token` does when the client's
/// document no longer matches the one a code or refresh token was issued
/// under (its redirect URIs, authentication method or keys; see
/// [`crate::flow::MetadataFingerprint`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum OnMetadataChange {
    /// `invalid_grant`, and a refresh token's family is revoked: the user
    /// signs in again and sees the client as it is now.
    #[default]
    Refuse,
    /// The grant goes on, bound to the new document from then on; the
    /// change is logged and counted.
    Allow,
}

/// `[policy.registration]`: what happens to clients that registered
/// themselves at `/register`. They have no domain a rule could match, so
/// they get this action (by default `warn`: nothing about them is
/// verified), unless a software statement from a trusted issuer put them in
/// a tier.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationPolicy {
    /// The action for a self-registered client no tier matches.
    pub action: Action,
    /// Its upstream client (else `default_upstream_client`).
    pub upstream_client: Option<String>,
    /// A ceiling on the scopes it may request.
    pub scopes: Option<Vec<String>>,
    /// `[[policy.registration.tiers]]`, tried in order: the first whose
    /// issuers include the one that vouched at registration decides.
    pub tiers: Vec<RegistrationTier>,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        RegistrationPolicy {
            action: Action::Warn,
            upstream_client: None,
            scopes: None,
            tiers: Vec::new(),
        }
    }
}

/// `[[policy.registration.tiers]]`: self-registered clients vouched for by
/// one of `issuers`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationTier {
    /// `[[trust.issuers]]` names.
    pub issuers: Vec<String>,
    /// What to do with such a client.
    pub action: Action,
    /// Its upstream client (else the registration's, else the default).
    pub upstream_client: Option<String>,
    /// A ceiling on its scopes (else the registration's).
    pub scopes: Option<Vec<String>>,
}

/// `[policy] interstitial`: when the user is shown who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum Interstitial {
    /// For `warn` decisions only.
    #[default]
    Warn,
    /// For every CIMD client, allowed ones included.
    Always,
}

/// `[[policy.rules]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// The client_id glob this rule matches.
    pub client_id: ClientIdPattern,
    /// What to do with a matching client.
    pub action: Action,
    /// Which upstream client a matching client is mapped onto.
    pub upstream_client: Option<String>,
    /// A ceiling on the scopes a matching client may request.
    pub scopes: Option<Vec<String>>,
    /// When set, the rule matches only clients whose software statement
    /// verified and was issued by one of these `[[trust.issuers]]` names.
    pub require_statement_from: Option<Vec<String>>,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
}

impl Policy {
    /// Builds the policy from its validated configuration.
    pub fn new(config: PolicyConfig) -> Self {
        Policy { config }
    }

    /// Decides what to do with a valid client. `vouched_by` is the issuer
    /// whose software statement for it verified, if one did.
    pub fn decide(
        &self,
        client_id: &ClientIdUrl,
        metadata: &ClientMetadata,
        vouched_by: Option<&str>,
    ) -> Decision {
        let matched = self.config.rules.iter().enumerate().find(|(_, rule)| {
            rule.client_id.matches(client_id)
                && rule.require_statement_from.as_ref().is_none_or(|issuers| {
                    vouched_by.is_some_and(|issuer| issuers.iter().any(|name| name == issuer))
                })
        });
        let mut decision = match matched {
            Some((index, rule)) => Decision {
                action: rule.action,
                upstream_client: rule
                    .upstream_client
                    .clone()
                    .or_else(|| self.config.default_upstream_client.clone()),
                scopes: rule.scopes.clone(),
                reasons: vec![Reason::Rule {
                    index,
                    pattern: rule.client_id.as_str().to_owned(),
                }],
            },
            None => Decision {
                action: self.config.default_action,
                upstream_client: self.config.default_upstream_client.clone(),
                scopes: None,
                reasons: vec![Reason::Default],
            },
        };
        if let Some(issuer) = vouched_by {
            decision.reasons.push(Reason::Vouched {
                issuer: issuer.to_owned(),
            });
        }
        self.loopback_floor(metadata, &mut decision);
        decision
    }

    /// Decides what to do with a client that registered itself: the
    /// registration's tier (by the issuer that vouched when it
    /// registered), else `policy.registration`; the loopback floor applies
    /// as to every client.
    pub fn decide_registered(
        &self,
        metadata: &ClientMetadata,
        vouched_by: Option<&str>,
    ) -> Decision {
        let registration = &self.config.registration;
        let tier = vouched_by.and_then(|issuer| {
            registration
                .tiers
                .iter()
                .enumerate()
                .find(|(_, tier)| tier.issuers.iter().any(|name| name == issuer))
        });
        let mut decision = match tier {
            Some((index, tier)) => Decision {
                action: tier.action,
                upstream_client: tier
                    .upstream_client
                    .clone()
                    .or_else(|| registration.upstream_client.clone())
                    .or_else(|| self.config.default_upstream_client.clone()),
                scopes: tier.scopes.clone().or_else(|| registration.scopes.clone()),
                reasons: vec![Reason::SelfRegistered { tier: Some(index) }],
            },
            None => Decision {
                action: registration.action,
                upstream_client: registration
                    .upstream_client
                    .clone()
                    .or_else(|| self.config.default_upstream_client.clone()),
                scopes: registration.scopes.clone(),
                reasons: vec![Reason::SelfRegistered { tier: None }],
            },
        };
        if let Some(issuer) = vouched_by {
            decision.reasons.push(Reason::Vouched {
                issuer: issuer.to_owned(),
            });
        }
        self.loopback_floor(metadata, &mut decision);
        decision
    }

    /// Raises the action to `loopback_only_redirects` for a client whose
    /// only redirect URIs are on loopback.
    fn loopback_floor(&self, metadata: &ClientMetadata, decision: &mut Decision) {
        // A statement vouches for the software, not for whoever holds the
        // loopback listener, so it does not lift this floor either.
        if metadata.only_loopback_redirects()
            && self.config.loopback_only_redirects > decision.action
        {
            decision.action = self.config.loopback_only_redirects;
            decision.reasons.push(Reason::LoopbackOnlyRedirects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> ClientIdUrl {
        ClientIdUrl::parse(url).expect("valid client_id")
    }

    fn metadata(url: &str, redirects: &[&str]) -> ClientMetadata {
        let body = serde_json::json!({ "client_id": url, "redirect_uris": redirects });
        crate::metadata::validate(&client(url), body.to_string().as_bytes())
            .expect("valid document")
    }

    fn rule(pattern: &str, action: Action) -> RuleConfig {
        RuleConfig {
            client_id: ClientIdPattern::new(pattern).expect("valid pattern"),
            action,
            upstream_client: None,
            scopes: None,
            require_statement_from: None,
        }
    }

    #[test]
    fn host_wildcard_does_not_cross_into_the_path_or_another_host() {
        let pattern = ClientIdPattern::new("https://*.example.com/**").unwrap();
        assert!(pattern.matches(&client("https://app.example.com/cimd.json")));
        assert!(pattern.matches(&client("https://a.b.example.com/x/y/z")));
        for spoof in [
            "https://evil.test/.example.com/cimd.json",
            "https://evil.test/x.example.com/",
            "https://example.com.evil.test/cimd.json",
            "https://evil.test/?.example.com/",
            "https://app.example.com:8443/cimd.json",
        ] {
            assert!(!pattern.matches(&client(spoof)), "{spoof} must not match");
        }
    }

    #[test]
    fn single_star_stays_within_one_path_segment() {
        let pattern = ClientIdPattern::new("https://app.example.com/*").unwrap();
        assert!(pattern.matches(&client("https://app.example.com/cimd.json")));
        assert!(!pattern.matches(&client("https://app.example.com/a/cimd.json")));
    }

    #[test]
    fn patterns_must_be_https_with_a_host() {
        assert!(ClientIdPattern::new("http://app.example.com/*").is_err());
        assert!(ClientIdPattern::new("*").is_err());
        assert!(ClientIdPattern::new("https:///x").is_err());
        assert!(ClientIdPattern::new("https://[/x").is_err());
    }

    #[test]
    fn first_matching_rule_wins_and_default_applies_otherwise() {
        let policy = Policy::new(PolicyConfig {
            rules: vec![
                rule("https://bad.example.com/**", Action::Deny),
                rule("https://*.example.com/**", Action::Allow),
            ],
            default_action: Action::Warn,
            ..PolicyConfig::default()
        });
        let web = ["https://app.example.com/cb"];
        let url = "https://bad.example.com/c";
        assert_eq!(
            policy
                .decide(&client(url), &metadata(url, &web), None)
                .action,
            Action::Deny
        );
        let url = "https://good.example.com/c";
        let decision = policy.decide(&client(url), &metadata(url, &web), None);
        assert_eq!(decision.action, Action::Allow);
        assert_eq!(
            decision.reasons,
            vec![Reason::Rule {
                index: 1,
                pattern: "https://*.example.com/**".into()
            }]
        );
        let url = "https://unknown.test/c";
        let decision = policy.decide(&client(url), &metadata(url, &web), None);
        assert_eq!(decision.action, Action::Warn);
        assert_eq!(decision.reasons, vec![Reason::Default]);
    }

    #[test]
    fn loopback_only_clients_are_raised_but_never_lowered() {
        let policy = Policy::new(PolicyConfig {
            rules: vec![
                rule("https://trusted.example.com/**", Action::Allow),
                rule("https://blocked.example.com/**", Action::Deny),
            ],
            loopback_only_redirects: Action::Warn,
            ..PolicyConfig::default()
        });
        let loopback = ["http://127.0.0.1/callback", "http://localhost/callback"];
        let url = "https://trusted.example.com/cli";
        let decision = policy.decide(&client(url), &metadata(url, &loopback), None);
        assert_eq!(decision.action, Action::Warn);
        assert!(decision.reasons.contains(&Reason::LoopbackOnlyRedirects));
        let url = "https://blocked.example.com/cli";
        let decision = policy.decide(&client(url), &metadata(url, &loopback), None);
        assert_eq!(decision.action, Action::Deny);
        assert!(!decision.reasons.contains(&Reason::LoopbackOnlyRedirects));
    }

    #[test]
    fn rule_upstream_client_falls_back_to_the_default() {
        let mut with_client = rule("https://a.example.com/**", Action::Allow);
        with_client.upstream_client = Some("special".into());
        with_client.scopes = Some(vec!["openid".into()]);
        let policy = Policy::new(PolicyConfig {
            rules: vec![with_client, rule("https://b.example.com/**", Action::Allow)],
            default_upstream_client: Some("main".into()),
            ..PolicyConfig::default()
        });
        let web = ["https://x.example.com/cb"];
        let url = "https://a.example.com/c";
        let decision = policy.decide(&client(url), &metadata(url, &web), None);
        assert_eq!(decision.upstream_client.as_deref(), Some("special"));
        assert_eq!(decision.scopes, Some(vec!["openid".to_owned()]));
        let url = "https://b.example.com/c";
        let decision = policy.decide(&client(url), &metadata(url, &web), None);
        assert_eq!(decision.upstream_client.as_deref(), Some("main"));
    }

    #[test]
    fn statement_rules_match_only_clients_vouched_for_by_a_named_issuer() {
        let mut vouched = rule("https://**", Action::Allow);
        vouched.require_statement_from = Some(vec!["registry".into(), "vendor".into()]);
        let policy = Policy::new(PolicyConfig {
            rules: vec![vouched],
            default_action: Action::Warn,
            ..PolicyConfig::default()
        });
        let web = ["https://app.example.com/cb"];
        let url = "https://app.example.com/c";
        let doc = metadata(url, &web);
        let decision = policy.decide(&client(url), &doc, Some("registry"));
        assert_eq!(decision.action, Action::Allow);
        assert!(decision.reasons.contains(&Reason::Vouched {
            issuer: "registry".into()
        }));
        // The same document without a verified statement, or vouched for
        // by an issuer the rule does not name, falls to the default.
        let decision = policy.decide(&client(url), &doc, None);
        assert_eq!(decision.action, Action::Warn);
        assert_eq!(decision.reasons, vec![Reason::Default]);
        let decision = policy.decide(&client(url), &doc, Some("elsewhere"));
        assert_eq!(decision.action, Action::Warn);
        assert_eq!(
            decision.reasons,
            vec![
                Reason::Default,
                Reason::Vouched {
                    issuer: "elsewhere".into()
                }
            ]
        );
    }

    #[test]
    fn a_statement_does_not_lift_the_loopback_floor() {
        let mut vouched = rule("https://**", Action::Allow);
        vouched.require_statement_from = Some(vec!["registry".into()]);
        let policy = Policy::new(PolicyConfig {
            rules: vec![vouched],
            loopback_only_redirects: Action::Warn,
            ..PolicyConfig::default()
        });
        let url = "https://cli.example.com/c";
        let doc = metadata(url, &["http://127.0.0.1/callback"]);
        let decision = policy.decide(&client(url), &doc, Some("registry"));
        assert_eq!(decision.action, Action::Warn);
        assert!(decision.reasons.contains(&Reason::LoopbackOnlyRedirects));
    }

    #[test]
    fn untrusted_clients_can_be_refused_while_vouched_ones_pass() {
        let mut vouched = rule("https://**", Action::Allow);
        vouched.require_statement_from = Some(vec!["registry".into()]);
        let policy = Policy::new(PolicyConfig {
            rules: vec![vouched],
            default_action: Action::Deny,
            ..PolicyConfig::default()
        });
        let url = "https://app.example.com/c";
        let doc = metadata(url, &["https://app.example.com/cb"]);
        assert_eq!(
            policy.decide(&client(url), &doc, Some("registry")).action,
            Action::Allow
        );
        assert_eq!(policy.decide(&client(url), &doc, None).action, Action::Deny);
    }

    #[test]
    fn the_match_everything_pattern_covers_every_client_id() {
        let pattern = ClientIdPattern::new("https://**").unwrap();
        for url in [
            "https://a.example/c",
            "https://a.example:8443/x/y/z.json",
            "https://a.example/",
        ] {
            assert!(pattern.matches(&client(url)), "{url}");
        }
    }

    #[test]
    fn action_names_round_trip() {
        // Metric labels and log fields: the strings are a contract.
        for (value, text) in [
            (Action::Allow, "allow"),
            (Action::Warn, "warn"),
            (Action::Deny, "deny"),
        ] {
            assert_eq!(value.as_str(), text);
            assert_eq!(value.to_string(), text);
            assert_eq!(text.parse::<Action>(), Ok(value));
        }
    }

    fn registered(redirects: &[&str]) -> ClientMetadata {
        let body = serde_json::json!({ "redirect_uris": redirects });
        crate::metadata::validate_registration(body.to_string().as_bytes()).expect("valid")
    }

    #[test]
    fn a_self_registered_client_gets_the_registration_policy_or_its_issuers_tier() {
        let policy = Policy::new(PolicyConfig {
            // Rules about domains never apply to a registration.
            rules: vec![rule("https://**", Action::Deny)],
            default_upstream_client: Some("main".into()),
            loopback_only_redirects: Action::Warn,
            registration: RegistrationPolicy {
                action: Action::Warn,
                upstream_client: None,
                scopes: Some(vec!["openid".into()]),
                tiers: vec![RegistrationTier {
                    issuers: vec!["registry".into()],
                    action: Action::Allow,
                    upstream_client: Some("partners".into()),
                    scopes: None,
                }],
            },
            ..PolicyConfig::default()
        });
        let web = registered(&["https://agent.example/cb"]);
        let plain = policy.decide_registered(&web, None);
        assert_eq!(plain.action, Action::Warn);
        assert_eq!(plain.upstream_client.as_deref(), Some("main"));
        assert_eq!(plain.scopes, Some(vec!["openid".to_owned()]));
        assert_eq!(plain.reasons, vec![Reason::SelfRegistered { tier: None }]);

        let vouched = policy.decide_registered(&web, Some("registry"));
        assert_eq!(vouched.action, Action::Allow);
        assert_eq!(vouched.upstream_client.as_deref(), Some("partners"));
        // The tier names no ceiling: the registration's applies.
        assert_eq!(vouched.scopes, Some(vec!["openid".to_owned()]));
        assert_eq!(
            vouched.reasons,
            vec![
                Reason::SelfRegistered { tier: Some(0) },
                Reason::Vouched {
                    issuer: "registry".into()
                }
            ]
        );
        // Another issuer: no tier.
        assert_eq!(
            policy.decide_registered(&web, Some("other")).action,
            Action::Warn
        );
        // The loopback floor holds for a vouched registration too.
        let local = registered(&["http://127.0.0.1/cb"]);
        let decision = policy.decide_registered(&local, Some("registry"));
        assert_eq!(decision.action, Action::Warn);
        assert!(decision.reasons.contains(&Reason::LoopbackOnlyRedirects));
    }
}
