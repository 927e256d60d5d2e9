//! Loading the layered configuration from real files in a temporary directory.

use std::fs;
use std::path::Path;

use keel_config::{
    ConfigError, ConfigLoader, ExposeSecret, LogFormat, RegistryConfig, RegistryKind, TraceExporter,
};

/// Copies the repository's real configuration files into a temporary directory, so the tests check
/// the files we ship, and lets a test change them.
fn shipped_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for name in ["default.yaml", "development.yaml", "production.yaml"] {
        fs::copy(shipped.join(name), dir.path().join(name)).expect("copy config file");
    }
    dir
}

#[test]
fn development_is_the_default_environment_and_overlays_default_yaml() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path()).load().expect("loads");
    assert_eq!(config.environment(), "development");
    assert_eq!(
        config.kernel().telemetry.log.format,
        LogFormat::Compact,
        "development.yaml wins over default.yaml"
    );
    assert_eq!(
        config.kernel().http.port,
        8080,
        "default.yaml supplies what the overlay leaves out"
    );
}

#[test]
fn keel_env_selects_the_production_overlay() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_ENV", "production")
        .load()
        .expect("loads");
    assert!(config.is_production());
    assert_eq!(config.kernel().telemetry.log.format, LogFormat::Json);
    assert_eq!(config.kernel().telemetry.traces.exporter, TraceExporter::Otlp);
    assert_eq!(
        config.kernel().http.security_headers.hsts_max_age_secs,
        31_536_000
    );
}

#[test]
fn environment_variables_override_files_at_any_depth() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_HTTP__PORT", "9999")
        .with_var("KEEL_HTTP__CORS__ALLOW_CREDENTIALS", "true")
        .with_var("KEEL_DATABASE__POOL__MAX_CONNECTIONS", "3")
        .with_var("KEEL_TELEMETRY__LOG__FORMAT", "json")
        .load()
        .expect("loads");
    let kernel = config.kernel();
    assert_eq!(kernel.http.port, 9999);
    assert!(kernel.http.cors.allow_credentials);
    assert_eq!(kernel.database.pool.max_connections, 3);
    assert_eq!(kernel.telemetry.log.format, LogFormat::Json);
}

#[test]
fn a_bad_environment_value_names_the_key_and_the_variable() {
    let dir = shipped_config();
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_HTTP__PORT", "eighty")
        .load()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ConfigError::Invalid { ref key, .. } if key == "http.port"),
        "{message}"
    );
    assert!(
        message.contains("KEEL_HTTP__PORT"),
        "names the variable: {message}"
    );
}

#[test]
fn a_bad_file_value_names_the_key_and_the_file() {
    let dir = shipped_config();
    fs::write(
        dir.path().join("development.yaml"),
        "http:\n  body_limit_bytes: -5\n",
    )
    .expect("write");
    let message = ConfigLoader::new(dir.path()).load().unwrap_err().to_string();
    assert!(message.contains("http.body_limit_bytes"), "{message}");
    assert!(message.contains("development.yaml"), "{message}");
}

#[test]
fn a_misspelt_key_in_a_file_stops_start_up() {
    let dir = shipped_config();
    fs::write(dir.path().join("development.yaml"), "http:\n  prot: 81\n").expect("write");
    let message = ConfigLoader::new(dir.path()).load().unwrap_err().to_string();
    assert!(message.contains("prot"), "{message}");
}

#[test]
fn a_rule_violation_names_the_key_and_its_source() {
    let dir = shipped_config();
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_TELEMETRY__TRACES__SAMPLE_RATIO", "1.5")
        .load()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("telemetry.traces.sample_ratio"), "{message}");
    assert!(
        message.contains("KEEL_TELEMETRY__TRACES__SAMPLE_RATIO"),
        "{message}"
    );
}

#[test]
fn a_missing_environment_file_is_a_clear_error() {
    let dir = shipped_config();
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_ENV", "staging")
        .load()
        .unwrap_err();
    assert!(matches!(error, ConfigError::FileUnreadable { ref path, .. } if path.ends_with("staging.yaml")));
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_ENV", "../etc")
        .load()
        .unwrap_err();
    assert!(matches!(error, ConfigError::UnknownEnvironment(_)));
}

#[test]
fn unknown_keel_variables_are_reported_as_likely_typos() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_HTPP__PORT", "81")
        .with_var("KEEL_DATABASE__SERVICES__IDENTITY__URL", "sqlite:elsewhere")
        .with_var("KEEL_ADMIN_EMAIL", "admin@example.com")
        .load()
        .expect("loads");
    assert_eq!(config.warnings().len(), 1, "{:?}", config.warnings());
    assert!(config.warnings()[0].contains("KEEL_HTPP__PORT"));
}

#[test]
fn a_misspelt_key_inside_a_known_section_stops_start_up() {
    let dir = shipped_config();
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_HTTP__PROT", "81")
        .load()
        .unwrap_err();
    assert!(error.to_string().contains("KEEL_HTTP__PROT"), "{error}");
}

#[test]
fn secret_files_supply_values_and_secrets_never_show() {
    let dir = shipped_config();
    let secret = dir.path().join("db-url");
    fs::write(&secret, "postgres://keel:s3cr3t-pw@db:5432/keel\n").expect("write");
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_DATABASE__URL_FILE", secret.display().to_string())
        .load()
        .expect("loads");
    let url = &config.kernel().database.url;
    assert_eq!(url.expose_secret(), "postgres://keel:s3cr3t-pw@db:5432/keel");
    assert!(
        !format!("{:?}", config.kernel()).contains("s3cr3t-pw"),
        "Debug redacts"
    );
    assert!(
        !config.redacted().to_string().contains("s3cr3t-pw"),
        "the printed configuration redacts"
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn services_read_their_own_sections() {
    #[derive(serde::Deserialize)]
    struct Demo {
        greeting: String,
    }
    let dir = shipped_config();
    fs::write(dir.path().join("development.yaml"), "demo:\n  greeting: hello\n").expect("write");
    let config = ConfigLoader::new(dir.path()).load().expect("loads");
    let demo: Demo = config.section("demo").expect("section");
    assert_eq!(demo.greeting, "hello");
    assert!(config.section::<Demo>("absent").is_err());
}

#[test]
fn an_unknown_section_in_a_file_is_reported_as_a_likely_typo() {
    let dir = shipped_config();
    fs::write(dir.path().join("development.yaml"), "htpp:\n  port: 81\n").expect("write");
    let config = ConfigLoader::new(dir.path()).load().expect("loads");
    assert_eq!(config.warnings().len(), 1, "{:?}", config.warnings());
    assert!(config.warnings()[0].contains("htpp"));
}

#[test]
fn an_unreadable_secret_file_names_the_variable() {
    let dir = shipped_config();
    let error = ConfigLoader::new(dir.path())
        .with_var("KEEL_DATABASE__URL_FILE", "/nonexistent/keel-secret")
        .load()
        .unwrap_err()
        .to_string();
    assert!(error.contains("KEEL_DATABASE__URL_FILE"), "{error}");
    assert!(error.contains("/nonexistent/keel-secret"), "{error}");
}

#[test]
fn the_admin_to_seed_comes_from_its_variables_and_stays_out_of_the_redacted_view() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_ADMIN_EMAIL", "root@example.com")
        .with_var("KEEL_ADMIN_PASSWORD", "a long admin secret")
        .load()
        .expect("loads");
    let admin = config.admin_seed();
    assert_eq!(admin.email.as_deref(), Some("root@example.com"));
    assert_eq!(
        admin
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned())
            .as_deref(),
        Some("a long admin secret")
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let shown = config.redacted().to_string();
    assert!(!shown.contains("a long admin secret"), "{shown}");

    let blank = ConfigLoader::new(dir.path())
        .with_var("KEEL_ADMIN_EMAIL", " ")
        .load()
        .expect("loads");
    assert!(blank.admin_seed().email.is_none(), "a blank variable is unset");
}

#[test]
fn the_shipped_registry_section_is_the_built_in_default() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path()).load().expect("loads");
    let shipped = &config.kernel().registry;
    let built_in = RegistryConfig::default();
    assert_eq!(shipped.kind, RegistryKind::Static);
    assert_eq!(shipped.request_timeout_ms, built_in.request_timeout_ms);
    assert_eq!(shipped.etcd, built_in.etcd);
    assert_eq!(shipped.consul, built_in.consul);
    assert_eq!(shipped.kubernetes, built_in.kubernetes);
}

#[test]
fn registry_backend_settings_come_from_variables_and_the_token_stays_secret() {
    let dir = shipped_config();
    let config = ConfigLoader::new(dir.path())
        .with_var("KEEL_REGISTRY__KIND", "consul")
        .with_var(
            "KEEL_REGISTRY__ETCD__ENDPOINTS",
            "[http://10.0.0.1:2379,http://10.0.0.2:2379]",
        )
        .with_var("KEEL_REGISTRY__CONSUL__ADDRESS", "https://consul.internal:8501")
        .with_var("KEEL_REGISTRY__CONSUL__TOKEN", "acl-s3cr3t")
        .with_var("KEEL_REGISTRY__KUBERNETES__SERVICES__IDENTITY", "keel-identity")
        .load()
        .expect("loads");
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let registry = &config.kernel().registry;
    assert_eq!(registry.kind, RegistryKind::Consul);
    assert_eq!(
        registry.etcd.endpoints,
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(registry.consul.address, "https://consul.internal:8501");
    assert_eq!(
        registry.consul.token.as_ref().map(|t| t.expose_secret()),
        Some("acl-s3cr3t")
    );
    assert_eq!(
        registry.kubernetes.services.get("identity").map(String::as_str),
        Some("keel-identity")
    );
    assert!(!format!("{registry:?}").contains("acl-s3cr3t"));
    assert!(!config.redacted().to_string().contains("acl-s3cr3t"));
}

#[test]
fn a_registry_setting_outside_the_backends_limits_names_its_key() {
    let dir = shipped_config();
    let message = ConfigLoader::new(dir.path())
        .with_var("KEEL_REGISTRY__CONSUL__DEREGISTER_AFTER_SECS", "30")
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("registry.consul.deregister_after_secs"),
        "{message}"
    );
}
