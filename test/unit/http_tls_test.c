/* http/tls.c: splitting the Go relay's ssl-combined-pem into certificate chain and key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/tls.h"

#define CERT(n) "-----BEGIN CERTIFICATE-----\nMII" n "\n-----END CERTIFICATE-----\n"
#define KEY(t)  "-----BEGIN " t "PRIVATE KEY-----\nMIIkey\n-----END " t "PRIVATE KEY-----\n"

static int
load(const char *text, char **cert, char **key, struct ir_err *err)
{
    char path[] = "/tmp/http_tls_test_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    int rc = tls_load_combined_pem(path, cert, key, err);
    remove(path);
    return rc;
}

int
main(void)
{
    char *cert = NULL;
    char *key = NULL;
    struct ir_err err = {0};

    /* Leaf, intermediate, key (any order, text between blocks ignored). */
    CHECK_EQ_I64(load("subject=leaf\n" CERT("leaf") KEY("") "bag\n" CERT("ca"), &cert, &key, &err),
                 0);
    CHECK_STREQ(cert, CERT("leaf") CERT("ca"));
    CHECK_STREQ(key, KEY(""));
    free(cert);
    free(key);

    CHECK_EQ_I64(load(KEY("RSA ") CERT("x"), &cert, &key, &err), 0);
    CHECK_STREQ(key, KEY("RSA "));
    free(cert);
    free(key);

    CHECK_EQ_I64(load(CERT("x"), &cert, &key, &err), -1);
    CHECK(strstr(err.msg, "no private key") != NULL);
    CHECK(cert == NULL && key == NULL);

    CHECK_EQ_I64(load(KEY("EC "), &cert, &key, &err), -1);
    CHECK(strstr(err.msg, "no certificate") != NULL);

    CHECK_EQ_I64(load(CERT("x") KEY("") KEY(""), &cert, &key, &err), -1);
    CHECK(strstr(err.msg, "several keys") != NULL);

    CHECK_EQ_I64(tls_load_combined_pem("/nonexistent/x.pem", &cert, &key, &err), -1);
    CHECK(strstr(err.msg, "/nonexistent/x.pem") != NULL);
    return CHECK_DONE();
}
