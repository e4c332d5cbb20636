# Strict warnings for our own targets only (third-party headers are included as SYSTEM).
function(hypersdk_strict_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow=local -Wnon-virtual-dtor -Wformat=2)
  if(HYPERSDK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
