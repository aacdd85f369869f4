#include "gitvirt/cli/app.h"

int main(int argc, char** argv) { return gitvirt::cli::Run(argc, argv); }
