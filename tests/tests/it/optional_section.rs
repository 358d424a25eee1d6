//! An optional section (the `docs` module's "An optional section"): with
//! `#[serde(default)]` on the struct it may be absent, or set in part; with a
//! `Defaults` source first, its defaults are part of the document. Real files.

use eac_accessor::SourceName;
use eac_accessor::prelude::*;

#[derive(Debug, Clone, PartialEq, serde::Deserialize, schemars::JsonSchema, EaCSection)]
#[serde(default)]
struct Cache {
    #[schemars(range(min = 1))]
    ttl_seconds: u64,
    redis_url: Option<String>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            ttl_seconds: 60,
            redis_url: None,
        }
    }
}

/// Required fields: absent, only a `Defaults` source lets it be.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
struct Pool {
    size: u32,
}

#[test]
fn a_serde_default_section_may_be_absent_set_in_part_and_absent_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.toml"), "[pool]\nsize = 4\n").unwrap();
    let config = EaCAccessor::builder()
        .section::<Cache>()
        .section::<Pool>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    assert_eq!(*config.load().section::<Cache>(), Cache::default());
    let mut cache = config.subscribe::<Cache>();

    let file = dir.path().join("cache.toml");
    std::fs::write(&file, "[cache]\nredis_url = \"redis://cache.internal\"\n").unwrap();
    assert!(config.reload(Origin::Refresh).unwrap().is_published());
    let snapshot = config.load();
    assert_eq!(Cache::lens().ttl_seconds().get(&snapshot), &60);
    assert_eq!(
        Cache::lens().redis_url().get(&snapshot).as_deref(),
        Some("redis://cache.internal")
    );
    assert!(cache.has_changed());
    cache.latest();

    // A key that is set is checked as ever: the file names it.
    std::fs::write(&file, "[cache]\nttl_seconds = 0\n").unwrap();
    let errors = config.reload(Origin::Refresh).unwrap_err();
    let error = errors.iter().next().unwrap();
    assert_eq!(error.key(), Some("cache.ttl_seconds"));
    assert_eq!(error.source(), Some(&SourceName::File(file.clone())));
    assert_eq!(config.load().version(), 2);

    // Removed again: back to the default, in a new version its subscribers hear of.
    std::fs::remove_file(&file).unwrap();
    assert!(config.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(config.load().version(), 3);
    assert_eq!(*config.load().section::<Cache>(), Cache::default());
    assert!(cache.has_changed());
    assert_eq!(*cache.latest().1, Cache::default());
}

#[test]
fn a_section_with_required_fields_is_missing_unless_defaults_set_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.toml"), "[cache]\nttl_seconds = 5\n").unwrap();

    let errors = EaCAccessor::builder()
        .section::<Cache>()
        .section::<Pool>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap_err();
    assert!(errors.has(ErrorKind::MissingKey), "{errors}");
    assert_eq!(errors.iter().next().unwrap().key(), Some("pool"));

    let defaults = Defaults::new(&serde_json::json!({ "pool": { "size": 8 } }));
    let config = EaCAccessor::builder()
        .section::<Cache>()
        .section::<Pool>()
        .source(defaults)
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    let snapshot = config.load();
    assert_eq!(snapshot.section::<Pool>().size, 8);
    assert_eq!(
        snapshot.source_of("pool.size").unwrap().source,
        SourceName::Defaults
    );
}
