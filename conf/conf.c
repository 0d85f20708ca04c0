/* Placeholder so the tree links while the configuration loader (issue #2) is being built. */
#include "conf/conf.h"
