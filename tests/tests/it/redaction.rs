//! No secret in any `Debug` or `Display` of eac's types: every
//! public type that can carry a value, formatted with a secret inside.

use std::sync::{Arc, Mutex};

use eac_accessor::lens::{Lens, Root};
use eac_accessor::source::{Defaults, Dir, Env, Format, Memory, Source};
use eac_accessor::{Candidate, EaCAccessor, EaCSection, Origin, Secret};
use eac_tests::{ConfigDir, SECRET, Upstream, app_with};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::four_sections;

/// The new secret every value below carries.
const NEW_SECRET: &str = "n3w-s3cr3t-value-42";

/// Fails if any form of `value` shows either secret.
macro_rules! assert_hidden {
    ($what:expr, $($form:expr),+ $(,)?) => {{
        let shown = [$($form),+].join("\n");
        for secret in [SECRET, NEW_SECRET] {
            assert!(!shown.contains(secret), "{} shows a secret:\n{shown}", $what);
        }
    }};
}

fn debug<T: std::fmt::Debug + ?Sized>(value: &T) -> String {
    format!("{value:?} {value:#?}")
}

fn api_key() -> impl Lens<Root = Upstream, Output = String> {
    Root::<Upstream>::new().map("api_key", |u: &Upstream| &u.api_key)
}

#[tokio::test]
async fn every_type_that_carries_a_value_redacts_secrets() {
    let dir = ConfigDir::with_app();
    let state = ConfigDir::new();
    let accessor = four_sections()
        .source(Dir::new(dir.path()))
        .durable_history(state.path())
        .build()
        .unwrap();

    // Change types, before and after a change of the secret.
    let field_changes = Arc::new(Mutex::new(Vec::new()));
    let _on_field = accessor.on_field_change(api_key(), {
        let seen = Arc::clone(&field_changes);
        move |change| seen.lock().unwrap().push(debug(&change))
    });
    let section_changes = Arc::new(Mutex::new(Vec::new()));
    let _on_section = accessor.on_change::<Upstream, _>({
        let seen = Arc::clone(&section_changes);
        move |change| seen.lock().unwrap().push(debug(&change))
    });
    let mut field_watch = accessor.subscribe_field(api_key());
    let mut section_watch = accessor.subscribe::<Upstream>();
    let mut events = accessor.events();

    dir.write(
        "app.toml",
        &app_with(
            &format!("api_key = \"{SECRET}\""),
            &format!("api_key = \"{NEW_SECRET}\""),
        ),
    );
    let outcome = accessor.reload(Origin::Refresh).unwrap();
    let update = field_watch.changed().await.unwrap();
    assert_eq!(update.new, NEW_SECRET, "the value itself is there to use");
    section_watch.changed().await.unwrap();

    let field_changes = field_changes.lock().unwrap().join("\n");
    assert!(field_changes.contains("[redacted]"), "{field_changes}");
    assert_hidden!("FieldChange", field_changes);
    assert_hidden!("FieldUpdate", debug(&update));
    assert!(debug(&update).contains("[redacted]"));
    assert_hidden!("SectionChange", section_changes.lock().unwrap().join("\n"));
    assert_hidden!("Outcome", debug(&outcome));
    assert_hidden!("Event::Published", debug(&events.try_recv().unwrap()));
    assert_hidden!("FieldWatch", debug(&field_watch));
    assert_hidden!(
        "SectionWatch",
        debug(&section_watch),
        debug(&*section_watch.latest().1)
    );
    assert_hidden!("LensGuard", debug(&api_key().load(&accessor)));

    // Snapshots, history, status, the accessor itself.
    let snapshot = accessor.load_full();
    assert_hidden!(
        "Snapshot",
        debug(&*snapshot),
        snapshot.redacted_document().to_string()
    );
    let source = snapshot.source_of("upstream.api_key").unwrap();
    assert_hidden!(
        "KeySource",
        debug(&source),
        source.to_string(),
        json!(source).to_string()
    );
    let history = accessor.history();
    assert_hidden!("HistoryEntry", debug(&history), json!(history).to_string());
    let diff = accessor.diff_versions(1, 2).unwrap();
    assert_hidden!(
        "Diff",
        debug(&diff),
        diff.to_string(),
        json!(diff).to_string()
    );
    assert_hidden!("Change", debug(&diff.changes[0]));
    assert_hidden!("EaCAccessor", debug(&accessor));

    // Rejections: a secret of the wrong type, in errors, events, status and history.
    dir.write(
        "app.toml",
        &app_with(
            &format!("api_key = \"{SECRET}\""),
            &format!("api_key = [\"{NEW_SECRET}\"]"),
        ),
    );
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert_hidden!(
        "Errors",
        debug(&errors),
        errors.to_string(),
        json!(errors).to_string()
    );
    assert_hidden!(
        "Error",
        debug(&errors.as_slice()[0]),
        errors.as_slice()[0].to_string()
    );
    assert_hidden!("Event::Rejected", debug(&events.try_recv().unwrap()));
    let status = accessor.status();
    assert_hidden!("Status", debug(&status), json!(status).to_string());
    assert_hidden!("ReloadReport", debug(&status.last_rejection));
    let rejections = accessor.rejections();
    assert_hidden!(
        "Rejection",
        debug(&rejections),
        json!(rejections).to_string()
    );

    // Previews and their candidates.
    // Back to the first secret: a change, with both secrets in old and new.
    let overlay = json!({"upstream": {"api_key": SECRET}});
    let candidate = Candidate::Overlay(overlay.clone());
    assert_hidden!("Candidate", debug(&candidate));
    let preview = accessor.preview(candidate);
    assert!(!preview.diff.is_empty());
    assert_hidden!("Preview", debug(&preview), json!(preview).to_string());

    // Sources, their layers, and a builder holding them.
    let env = Env::prefixed("APP_").vars([("APP_UPSTREAM__API_KEY", NEW_SECRET)]);
    let memory = Memory::new(
        "m",
        Format::Toml,
        format!("[upstream]\napi_key = \"{NEW_SECRET}\"\n"),
    );
    let defaults = Defaults::new(&overlay);
    let layers: Vec<_> = [&env as &dyn Source, &memory, &defaults]
        .into_iter()
        .flat_map(|s| s.load().unwrap())
        .collect();
    assert_hidden!(
        "sources",
        debug(&env),
        debug(&memory),
        debug(&defaults),
        debug(&layers)
    );
    let builder = EaCAccessor::builder()
        .section::<Upstream>()
        .source(env)
        .source(memory);
    assert_hidden!("Builder", debug(&builder));
}

/// A section that derives `Debug` itself: its secret is typed `Secret<T>`.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
#[eac(path = "vault")]
struct Vault {
    address: String,
    token: Secret<String>,
}

#[test]
fn a_section_deriving_debug_hides_a_secret_typed_secret() {
    let accessor = EaCAccessor::builder()
        .section::<Vault>()
        .source(Memory::new(
            "m",
            Format::Toml,
            format!("[vault]\naddress = \"https://vault\"\ntoken = \"{NEW_SECRET}\"\n"),
        ))
        .build()
        .unwrap();
    let snapshot = accessor.load();
    let vault = snapshot.section::<Vault>();
    assert_eq!(vault.token.expose(), NEW_SECRET);
    assert_eq!(vault.address, "https://vault");
    assert_eq!(
        format!("{vault:?}"),
        r#"Vault { address: "https://vault", token: [redacted] }"#
    );
    // The derive finds the field by its type: it is a secret path too.
    assert_eq!(Vault::secret_paths(), ["token"]);
    assert_eq!(snapshot.redacted_document()["vault"]["token"], "[redacted]");
    assert_hidden!("Secret", format!("{} {:?}", vault.token, vault.token));
}
