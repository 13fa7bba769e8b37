/* mr_summary.h — assemble a finished grid's cells into DIR/results.h5, DIR/summary.json
 * and DIR/summary.csv (docs/results.md), each written atomically. The corruption error
 * CE and mCE (ImageNet-C definitions, with the config's reference router as the
 * reference model) are computed here from the cells.
 */
#ifndef MR_SUMMARY_H
#define MR_SUMMARY_H

#include "mr_grid.h"

/* MR_EINPUT listing the first missing cells if the grid is not complete in `dir`. */
int mr_summary_write(const mr_grid *g, const char *dir);

#endif
