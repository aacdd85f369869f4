# Writes OUTPUT, a C++ file defining gitvirt::DashboardHtml() as the contents of INPUT.
# Run at build time (cmake -P), so editing dashboard.html rebuilds only this file.
file(READ "${INPUT}" content)
set(delimiter "gvdash")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )${delimiter}\"")
endif()
# Raw string literals longer than the compiler's comfortable size are split; adjacent literals
# concatenate.
string(LENGTH "${content}" length)
set(chunks "")
set(offset 0)
while(offset LESS length)
  string(SUBSTRING "${content}" ${offset} 16000 piece)
  string(APPEND chunks "R\"${delimiter}(${piece})${delimiter}\"\n")
  math(EXPR offset "${offset} + 16000")
endwhile()
file(WRITE "${OUTPUT}.tmp"
"// Generated from controller/api/dashboard.html by embed_dashboard.cmake. Do not edit.
#include \"dashboard.h\"

namespace gitvirt {

std::string_view DashboardHtml() {
  static constexpr char kPage[] =
${chunks};
  return {kPage, sizeof(kPage) - 1};
}

}  // namespace gitvirt
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
