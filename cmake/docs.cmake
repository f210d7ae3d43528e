# The docs against the code: every option `notmod COMMAND --help` prints is in docs/usage.md, and
# every test a docs page cites exists (scripts/check-docs).
if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME docs COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-docs
             --notmod $<TARGET_FILE:notmod_cmd>)
    set_tests_properties(docs PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1" TIMEOUT 30)
endif()
