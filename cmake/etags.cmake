# Content ETags: the hashing memo and pool, manifests, notmod etag, and their tests.
target_sources(notmod_server PRIVATE src/hashing.c src/manifest.c)
target_sources(notmod_cmd PRIVATE programs/etag.c)

nm_unit_test(hashing notmod_server)
nm_unit_test(manifest notmod_server)
nm_unit_test(filecache notmod_server)
nm_fuzz_target(manifest notmod_server)

if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME integration_etags
             COMMAND python3 -m unittest -v test_etags
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
    # Runs notmod as nobody: .ci/run runs the other_user suites again from a 0700 directory.
    set_tests_properties(integration_etags PROPERTIES
                         ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                         TIMEOUT 400 LABELS other_user)
endif()
