//! The `jwt` configuration section as shipped and as overridden.

use keel_authn::JwtSettings;

#[test]
fn the_shipped_configuration_has_a_valid_jwt_section() {
    let settings = JwtSettings::from_config(&keel_testkit::test_config(&[])).unwrap();
    assert_eq!(settings, JwtSettings::default());
}

#[test]
fn an_excessive_leeway_is_refused_at_load() {
    let config = keel_testkit::test_config(&[("KEEL_JWT__LEEWAY_SECS", "86400")]);
    let error = JwtSettings::from_config(&config).unwrap_err();
    assert!(error.to_string().contains("jwt.leeway_secs"), "{error}");
}

#[test]
fn an_unknown_key_in_the_section_is_refused() {
    let config = keel_testkit::test_config(&[("KEEL_JWT__LEWAY_SECS", "5")]);
    let error = JwtSettings::from_config(&config).unwrap_err();
    assert!(error.to_string().contains("leway_secs"), "{error}");
}
