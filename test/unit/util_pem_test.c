/* util/pem.c: splitting a combined PEM file into certificate chain and private key, with the
 * key kinds Go's tls.X509KeyPair accepts, and the messages --check-config and the start give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util/pem.h"

#define CERT(n) "-----BEGIN CERTIFICATE-----\nMII" n "\n-----END CERTIFICATE-----\n"
#define KEY(t)  "-----BEGIN " t "PRIVATE KEY-----\nMIIkey\n-----END " t "PRIVATE KEY-----\n"

static int
load(const char *text, struct pem_pair *p, struct ir_err *err)
{
    char path[] = "/tmp/util_pem_test_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    int rc = pem_load_pair(path, p, err);
    remove(path);
    return rc;
}

static void
test_ok(void)
{
    struct pem_pair p;
    struct ir_err err = {0, ""};
    /* Leaf, key, intermediate (any order, text and other blocks between them ignored). */
    CHECK_EQ_I64(load("subject=leaf\n" CERT("leaf") KEY("") "bag\n" CERT("ca"), &p, &err), 0);
    CHECK_STREQ(p.cert, CERT("leaf") CERT("ca"));
    CHECK_STREQ(p.key, KEY(""));
    pem_pair_cleanup(&p);
    CHECK(p.cert == NULL && p.key == NULL);
    const char *kinds[] = {"RSA ", "EC ", "DSA ", "ENCRYPTED "};
    for (size_t i = 0; i < 4; i++) {
        char text[512];
        char want[256];
        snprintf(want, sizeof(want),
                 "-----BEGIN %sPRIVATE KEY-----\nMIIkey\n-----END %sPRIVATE "
                 "KEY-----\n",
                 kinds[i], kinds[i]);
        snprintf(text, sizeof(text), "%s%s", want, CERT("x"));
        CHECK_EQ_I64(pem_split_pair(text, strlen(text), "f", &p, &err), 0);
        CHECK_STREQ(p.key, want);
        pem_pair_cleanup(&p);
    }
    /* openssl ecparam -genkey writes EC PARAMETERS before the key: not a certificate. */
    const char ec[] =
            "-----BEGIN EC PARAMETERS-----\nBgg=\n-----END EC PARAMETERS-----\n" KEY("EC ")
                    CERT("x");
    CHECK_EQ_I64(pem_split_pair(ec, strlen(ec), "f", &p, &err), 0);
    CHECK_STREQ(p.cert, CERT("x"));
    pem_pair_cleanup(&p);
}

static void
test_refused(void)
{
    struct pem_pair p;
    struct ir_err err = {0, ""};
    const char *t = CERT("x");
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "\"f.pem\" holds no private key (-----BEGIN ... PRIVATE KEY-----)");
    CHECK(p.cert == NULL && p.key == NULL);
    t = KEY("EC ");
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "\"f.pem\" holds no certificate (-----BEGIN CERTIFICATE-----)");
    t = "nothing here\n";
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "\"f.pem\" holds no certificate (-----BEGIN CERTIFICATE-----) and no "
                         "private key (-----BEGIN ... PRIVATE KEY-----)");
    t = CERT("x") KEY("") KEY("RSA ");
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "\"f.pem\" holds 2 private keys (want exactly one)");
    /* A TRUSTED CERTIFICATE is not a certificate for Go either. */
    t = "-----BEGIN TRUSTED CERTIFICATE-----\nx\n-----END TRUSTED CERTIFICATE-----\n" KEY("");
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK(strstr(err.msg, "no certificate") != NULL);
    t = CERT("x") "-----BEGIN PRIVATE KEY-----\nMIIkey\n";
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "\"f.pem\": PEM block \"-----BEGIN PRIVATE KEY\" has no END line");
    t = CERT("x") "-----BEGIN PRIVATE KEY-----\nMIIkey\n-----END RSA PRIVATE KEY-----\n";
    CHECK_EQ_I64(pem_split_pair(t, strlen(t), "f.pem", &p, &err), -1);
    CHECK(strstr(err.msg, "has no END line") != NULL);
}

static void
test_files(void)
{
    struct pem_pair p;
    struct ir_err err = {0, ""};
    CHECK_EQ_I64(pem_load_pair("/nonexistent/x.pem", &p, &err), -1);
    CHECK_STREQ(err.msg, "cannot read \"/nonexistent/x.pem\": No such file or directory");
    CHECK_EQ_I64(pem_load_pair("/tmp", &p, &err), -1);
    CHECK_STREQ(err.msg, "cannot read \"/tmp\": Is a directory");
    /* The fixture of the conf tests. */
    CHECK_EQ_I64(pem_load_pair(IR_TEST_DIR "/conf/pem/combined.pem", &p, &err), 0);
    CHECK(p.cert != NULL && strncmp(p.cert, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
    CHECK(p.key != NULL && strstr(p.key, "PRIVATE KEY-----\n") != NULL);
    pem_pair_cleanup(&p);
}

int
main(void)
{
    test_ok();
    test_refused();
    test_files();
    return CHECK_DONE();
}
