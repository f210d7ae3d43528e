# Chromium revalidating the example site, driven by playwright-core (tests/browser).
if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME browser_revalidation COMMAND node --test
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/browser)
    set_tests_properties(browser_revalidation PROPERTIES
                         ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>" TIMEOUT 180)
endif()
