/* Report.h: the non-interactive outputs of a model: the task table (`ps`),
 * the task tree (`pstree`), and one snapshot as JSON (`dump --json`). */
#ifndef ASYNCTOP_REPORT_H
#define ASYNCTOP_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "Applier.h"
#include "Model.h"
#include "TaskColumn.h"

/* Prints every live task (finished ones too when all) sorted by column
 * sort, one line each under a title line. Returns the number of rows. */
unsigned Report_ps(FILE *f, Model *m, TaskColumn sort, bool descending, const char *filter);
/* Prints the task tree (cycle-safe), ascii lines when ascii. */
unsigned Report_pstree(FILE *f, Model *m, bool ascii);
/* Prints the JSON document described in asynctop(1) (process, config, loops, loop (the one
 * watched, with its id), tasks, stacks (the frames of every stack_id the tasks refer to,
 * resolved through a's tables; an empty object when a is NULL), slow_callbacks,
 * exceptions). */
void Report_json(FILE *f, Model *m, const Applier *a);

#endif
