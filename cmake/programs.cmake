# The notmod command: argument parsing and wiring only.
add_executable(notmod_cmd
    programs/notmod.c
    programs/serve.c
)
set_target_properties(notmod_cmd PROPERTIES OUTPUT_NAME notmod)
target_link_libraries(notmod_cmd PRIVATE notmod_server)

# The command line of every subcommand (serve's own: integration_serve_lifecycle).
if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME integration_cli COMMAND python3 -m unittest -v test_cli
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
    set_tests_properties(integration_cli PROPERTIES
                         ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                         TIMEOUT 300)
endif()
