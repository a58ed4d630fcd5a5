//! The languages of the console and the handheld UI: one Fluent catalogue per language and
//! area (`edge/i18n/<lang>/<area>.ftl`), compiled into the binary.
//!
//! English is complete by definition; every other shipped language must carry exactly
//! English's keys (a test compares them, and one checks that every key the templates and the
//! handheld's script ask for exists). A key missing at run time falls back to English, then
//! to the key itself, so a page never fails for a string.
//!
//! The language of a request: the account's own (a manager's or an operator's, kept in the
//! store), else the best match of `Accept-Language`, else English.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// A language Holdfast ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    De,
}

impl Lang {
    /// Every shipped language, English (the fallback) first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    /// The BCP 47 code: `en`, `de`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The language's own name, for a language menu.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
        }
    }

    /// A shipped language by its code (`de`, `de-AT`, `EN`); `None` for any other.
    pub fn parse(code: &str) -> Option<Lang> {
        let id: LanguageIdentifier = code.trim().parse().ok()?;
        Lang::ALL
            .into_iter()
            .find(|l| id.language.as_str() == l.code())
    }

    /// An account's choice as given (an API body, a command-line flag): empty or `None` is
    /// "as the browser asks"; anything else must be a shipped language, or the error says
    /// which are.
    pub fn choice(code: Option<&str>) -> Result<Option<Lang>, String> {
        match code.map(str::trim) {
            None | Some("") => Ok(None),
            Some(code) => Lang::parse(code).map(Some).ok_or_else(|| {
                format!(
                    "language {code:?} is not shipped (one of: {})",
                    Lang::ALL.map(|l| l.code()).join(", ")
                )
            }),
        }
    }

    fn id(self) -> LanguageIdentifier {
        // Both codes are valid BCP 47 language subtags.
        self.code().parse().unwrap_or_default()
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The best shipped language for an `Accept-Language` header (quality values honoured),
/// English when nothing matches or there is no header.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    use fluent_langneg::{NegotiationStrategy, accepted_languages, negotiate_languages};
    let Some(header) = accept_language else {
        return Lang::En;
    };
    // fluent-langneg reads the tags in the header's order and drops the quality values: order
    // by quality first (a stable sort keeps the header's order among equals).
    let mut ranges: Vec<(f32, &str)> = header
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (!tag.is_empty() && q > 0.0).then_some((q, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let ordered = ranges.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(",");
    let requested = accepted_languages::parse(&ordered);
    let available: Vec<LanguageIdentifier> = Lang::ALL.iter().map(|l| l.id()).collect();
    let default = Lang::En.id();
    let chosen = negotiate_languages(
        &requested,
        &available,
        Some(&default),
        NegotiationStrategy::Filtering,
    );
    chosen
        .first()
        .and_then(|id| Lang::parse(&id.to_string()))
        .unwrap_or(Lang::En)
}

/// One catalogue file per language and area, compiled in. Add an area here and its two
/// files; the tests then hold the languages to the same keys.
macro_rules! areas {
    ($($area:literal),* $(,)?) => {
        &[$((
            $area,
            include_str!(concat!("../i18n/en/", $area, ".ftl")),
            include_str!(concat!("../i18n/de/", $area, ".ftl")),
        )),*]
    };
}

/// (area, English, German).
pub const AREAS: &[(&str, &str, &str)] = areas!["console", "runbook", "ui", "records", "ops"];

fn source(lang: Lang, area: &(&str, &'static str, &'static str)) -> &'static str {
    match lang {
        Lang::En => area.1,
        Lang::De => area.2,
    }
}

/// Every shipped language's messages.
pub struct Catalogue {
    bundles: Vec<(Lang, FluentBundle<FluentResource>)>,
    /// Problems found loading the files (syntax errors, a key defined twice); empty in a
    /// good build, which a test asserts.
    pub problems: Vec<String>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("languages", &self.bundles.len())
            .field("problems", &self.problems)
            .finish()
    }
}

/// The catalogue, loaded on first use.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::load)
}

impl Catalogue {
    fn load() -> Catalogue {
        let mut problems = Vec::new();
        let mut bundles = Vec::new();
        for lang in Lang::ALL {
            let mut bundle = FluentBundle::new_concurrent(vec![lang.id()]);
            // The output goes into HTML and plain text, not bidirectional layouts: no
            // isolation marks around placeables.
            bundle.set_use_isolating(false);
            for area in AREAS {
                let resource = match FluentResource::try_new(source(lang, area).to_owned()) {
                    Ok(r) => r,
                    Err((r, errors)) => {
                        problems.extend(
                            errors
                                .iter()
                                .map(|e| format!("{lang}/{}.ftl: {e:?}", area.0)),
                        );
                        r
                    }
                };
                if let Err(errors) = bundle.add_resource(resource) {
                    problems.extend(
                        errors
                            .iter()
                            .map(|e| format!("{lang}/{}.ftl: {e:?}", area.0)),
                    );
                }
            }
            bundles.push((lang, bundle));
        }
        Catalogue { bundles, problems }
    }

    fn bundle(&self, lang: Lang) -> Option<&FluentBundle<FluentResource>> {
        self.bundles
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, b)| b)
    }

    /// The message `key` in `lang` with `args`; English when `lang` lacks it, the key itself
    /// when English does too.
    pub fn text(&self, lang: Lang, key: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        for candidate in [lang, Lang::En] {
            let Some(bundle) = self.bundle(candidate) else {
                continue;
            };
            let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
            return text.into_owned();
        }
        key.to_owned()
    }

    /// Whether `lang` has `key`.
    pub fn has(&self, lang: Lang, key: &str) -> bool {
        self.bundle(lang).is_some_and(|b| b.has_message(key))
    }

    /// The keys of one area in `lang`, in file order.
    pub fn keys(lang: Lang, area: &str) -> Vec<String> {
        AREAS
            .iter()
            .filter(|a| a.0 == area)
            .flat_map(|a| {
                let resource = match FluentResource::try_new(source(lang, a).to_owned()) {
                    Ok(r) | Err((r, _)) => r,
                };
                resource
                    .entries()
                    .filter_map(|e| match e {
                        fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every message of `area` in `lang`, formatted with each variable written as `{name}`:
    /// the handheld's script fills them in.
    pub fn area_strings(&self, lang: Lang, area: &str) -> BTreeMap<String, String> {
        let Some(bundle) = self.bundle(lang) else {
            return BTreeMap::new();
        };
        let english = self.bundle(Lang::En);
        Self::keys(Lang::En, area)
            .into_iter()
            .filter_map(|key| {
                let message = bundle
                    .get_message(&key)
                    .map(|m| (bundle, m))
                    .or_else(|| english.and_then(|b| b.get_message(&key).map(|m| (b, m))))?;
                let (bundle, message) = message;
                let pattern = message.value()?;
                let mut args = FluentArgs::new();
                for name in variables(pattern) {
                    args.set(name.clone(), FluentValue::from(format!("{{{name}}}")));
                }
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
                Some((key, text.into_owned()))
            })
            .collect()
    }
}

/// The names of a pattern's plain variables (`{ $name }`).
fn variables(pattern: &fluent_syntax::ast::Pattern<&str>) -> Vec<String> {
    use fluent_syntax::ast::{Expression, InlineExpression, PatternElement};
    let mut out = Vec::new();
    for element in &pattern.elements {
        if let PatternElement::Placeable { expression } = element {
            let inline = match expression {
                Expression::Inline(i) => i,
                Expression::Select { selector, .. } => selector,
            };
            if let InlineExpression::VariableReference { id } = inline {
                out.push(id.name.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_loads_without_problems() {
        assert!(
            catalogue().problems.is_empty(),
            "{:#?}",
            catalogue().problems
        );
    }

    #[test]
    fn every_language_has_exactly_the_english_keys() {
        for (area, _, _) in AREAS {
            let english = Catalogue::keys(Lang::En, area);
            assert!(!english.is_empty(), "{area} has no English strings");
            for lang in &Lang::ALL[1..] {
                let theirs = Catalogue::keys(*lang, area);
                let missing: Vec<_> = english.iter().filter(|k| !theirs.contains(k)).collect();
                let extra: Vec<_> = theirs.iter().filter(|k| !english.contains(k)).collect();
                assert!(
                    missing.is_empty() && extra.is_empty(),
                    "{lang}/{area}.ftl: missing {missing:?}, not in English {extra:?}"
                );
            }
        }
    }

    /// Every key the handheld's page and script name (`data-i18n…="key"`, `T('key'…`) is in
    /// the English catalogue; keys built from a prefix have each of their variants.
    #[test]
    fn every_key_the_handheld_names_exists() {
        let page = include_str!("../ui/index.html");
        let script = include_str!("../ui/app.js");
        let mut keys = Vec::new();
        for (source, opener, close) in [
            (page, "data-i18n=\"", '"'),
            (page, "data-i18n-placeholder=\"", '"'),
            (page, "data-i18n-label=\"", '"'),
            (script, "T('", '\''),
        ] {
            let mut rest = source;
            while let Some(at) = rest.find(opener) {
                rest = &rest[at + opener.len()..];
                let end = rest.find(close).unwrap_or(0);
                keys.push(rest[..end].to_owned());
            }
        }
        assert!(keys.len() > 40, "{keys:?}");
        let english = Catalogue::keys(Lang::En, "ui");
        let mut missing = Vec::new();
        for key in &keys {
            let ok = if key.ends_with('-') {
                let variants: &[&str] = match key.as_str() {
                    "ui-mode-" => &["online", "degraded", "offline", "unknown"],
                    "ui-workflow-" => &["pick", "receive", "count", "transfer"],
                    other => panic!("a key built from {other:?}: list its variants here"),
                };
                variants
                    .iter()
                    .all(|v| english.contains(&format!("{key}{v}")))
            } else {
                english.contains(key)
            };
            if !ok {
                missing.push(key.clone());
            }
        }
        assert!(missing.is_empty(), "not in en/ui.ftl: {missing:?}");
    }

    #[test]
    fn the_handhelds_strings_keep_their_variables_for_the_script() {
        let de = catalogue().area_strings(Lang::De, "ui");
        assert_eq!(de["ui-queued"], "{n} wartend");
        assert_eq!(
            de["ui-label-queued"],
            "Etikett an {printer} gesendet (Auftrag {job})"
        );
        assert_eq!(
            de.len(),
            Catalogue::keys(Lang::En, "ui").len(),
            "every key, in German"
        );
    }

    #[test]
    fn accept_language_picks_the_best_shipped_language() {
        assert_eq!(negotiate(None), Lang::En);
        assert_eq!(negotiate(Some("de-DE,de;q=0.9,en;q=0.8")), Lang::De);
        assert_eq!(negotiate(Some("fr-FR, de;q=0.5")), Lang::De);
        assert_eq!(negotiate(Some("fr-FR")), Lang::En);
        assert_eq!(negotiate(Some("en;q=0.4, de;q=0.9")), Lang::De);
        assert_eq!(negotiate(Some("\u{0}garbage;;q=x")), Lang::En);
        assert_eq!(Lang::parse("de-AT"), Some(Lang::De));
        assert_eq!(Lang::parse("xx"), None);
    }

    #[test]
    fn a_missing_key_falls_back_to_english_then_to_the_key() {
        let c = catalogue();
        assert_eq!(c.text(Lang::De, "no-such-key", &[]), "no-such-key");
        let signin = c.text(Lang::De, "login-title", &[]);
        assert_ne!(signin, "login-title");
        assert_ne!(signin, c.text(Lang::En, "login-title", &[]));
    }
}
