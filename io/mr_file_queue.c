#include "mr_file_queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"

typedef struct job {
    char *path;
    void *data;
    size_t len;
    struct job *next;
} job;

struct mr_file_queue {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a job was finished */
    pthread_t thread;
    job *head, *tail;
    size_t queued_bytes, max_bytes;
    int busy;       /* the thread holds a job */
    int stop;
    int status;     /* first write error (MR_OK: none) */
    char msg[1024]; /* its message */
};

static void job_free(job *j)
{
    if (!j) return;
    free(j->path);
    free(j->data);
    free(j);
}

static void *writer(void *arg)
{
    mr_file_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stop) pthread_cond_wait(&q->work, &q->lock);
        if (!q->head) break; /* stop, nothing left */
        job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->busy = 1;
        int skip = q->status != MR_OK; /* after a failure nothing more is written */
        pthread_mutex_unlock(&q->lock);
        int st = skip ? MR_OK : mr_file_write(j->path, j->data, j->len);
        pthread_mutex_lock(&q->lock);
        if (st != MR_OK && q->status == MR_OK) {
            q->status = st;
            snprintf(q->msg, sizeof q->msg, "%s", mr_error_message());
        }
        q->queued_bytes -= j->len;
        q->busy = 0;
        job_free(j);
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int mr_file_queue_alloc(mr_file_queue **out, size_t max_bytes)
{
    *out = NULL;
    mr_file_queue *q = calloc(1, sizeof *q);
    if (!q) return mr_error_set(MR_ENOMEM, "out of memory (file queue)");
    q->max_bytes = max_bytes;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    if (pthread_create(&q->thread, NULL, writer, q) != 0) {
        pthread_cond_destroy(&q->done);
        pthread_cond_destroy(&q->work);
        pthread_mutex_destroy(&q->lock);
        free(q);
        return mr_error_set(MR_EIO, "cannot start the file writer thread");
    }
    *out = q;
    return MR_OK;
}

/* The first write error as this thread's error (q->lock held). */
static int failed(mr_file_queue *q)
{
    return q->status == MR_OK ? MR_OK : mr_error_set(q->status, "%s", q->msg);
}

int mr_file_queue_put(mr_file_queue *q, const char *path, void *data, size_t len)
{
    job *j = calloc(1, sizeof *j);
    char *p = strdup(path);
    if (!j || !p) {
        free(j);
        free(p);
        free(data);
        return mr_error_set(MR_ENOMEM, "%s: out of memory (file queue)", path);
    }
    *j = (job){.path = p, .data = data, .len = len};
    pthread_mutex_lock(&q->lock);
    /* bounded: wait while the queue holds max_bytes (one file alone may exceed it) */
    while (q->status == MR_OK && q->head && q->queued_bytes + len > q->max_bytes)
        pthread_cond_wait(&q->done, &q->lock);
    int st = failed(q);
    if (st == MR_OK) {
        if (q->tail) q->tail->next = j;
        else q->head = j;
        q->tail = j;
        q->queued_bytes += len;
        pthread_cond_signal(&q->work);
        j = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    job_free(j);
    return st;
}

int mr_file_queue_drain(mr_file_queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->head || q->busy) pthread_cond_wait(&q->done, &q->lock);
    int st = failed(q);
    pthread_mutex_unlock(&q->lock);
    return st;
}

void mr_file_queue_free(mr_file_queue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL); /* writes what is queued, then returns */
    pthread_cond_destroy(&q->done);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
