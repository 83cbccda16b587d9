// The MPI C API for Swift. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are
// macros over addresses of library globals, which Swift cannot import: each is wrapped in an
// inline function here.
#ifndef NABLA_CMPI_SHIM_H
#define NABLA_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm nabla_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype nabla_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype nabla_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype nabla_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype nabla_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op nabla_mpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op nabla_mpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op nabla_mpi_op_min(void) { return MPI_MIN; }
static inline void *nabla_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request nabla_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *nabla_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int nabla_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int nabla_mpi_success(void) { return MPI_SUCCESS; }
static inline int nabla_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info nabla_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int nabla_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }

#endif
