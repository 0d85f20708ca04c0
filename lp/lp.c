/* Placeholder so the tree links while the line protocol engine (issue #3) is being built. */
#include "lp/lp.h"
