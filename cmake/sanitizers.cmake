# RELAY_SANITIZE=address,undefined or thread adds the sanitizers to every target.
if(RELAY_SANITIZE)
    add_compile_options(-fsanitize=${RELAY_SANITIZE} -fno-omit-frame-pointer
        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${RELAY_SANITIZE})
endif()
