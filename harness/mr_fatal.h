/* mr_fatal.h — the CLI's handler of fatal signals (SIGSEGV, SIGBUS, SIGFPE): where an HDF5
 * input has been opened (mr_h5_last_input), it names that file, says libhdf5 crashes on
 * some corrupt HDF5 files, and exits with status 2 (bad input) instead of dying of the
 * signal; before any input, the signal kills as usual. Not installed in sanitizer builds,
 * whose own report must stay. The alternate signal stack is a static buffer. */
#ifndef MR_FATAL_H
#define MR_FATAL_H

void mr_fatal_install(void);

#endif
