/* asynctop.h: the one header applications include to use libasynctop. */
#ifndef ASYNCTOP_H
#define ASYNCTOP_H

#include "asynctop/common.h"
#include "asynctop/error.h"
#include "asynctop/debug.h"
#include "asynctop/loop.h"
#include "asynctop/future.h"
#include "asynctop/executor.h"

/* ---- tasks layer (runtime/tasks): its public headers are added below ---- */

/* ---- end of tasks layer ------------------------------------------------- */

#endif
