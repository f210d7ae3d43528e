# The notmod command: argument parsing and wiring only.
add_executable(notmod_cmd
    programs/notmod.c
    programs/serve.c
)
set_target_properties(notmod_cmd PROPERTIES OUTPUT_NAME notmod)
target_link_libraries(notmod_cmd PRIVATE notmod_server)
