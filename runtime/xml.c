/*
 * ecsplay.core.xml: parse AWS XML responses (expat) into plain Lua tables; escape text.
 *
 *   parse(s)  -> {name=, attrs={}, children={...}, text=}
 *                | nil, "XML error at line L, column C: msg"
 *                (an element without attributes or children shares the document's one
 *                empty table for them: read it, do not add to it)
 *   escape(s) -> s with & < > " ' (and CR) replaced by references
 *
 * Parsing happens in two phases so that no Lua error can ever unwind through expat:
 * expat callbacks only build a compact C tree (malloc'd, owned by a guard userdata whose
 * __gc frees it), then the tree is converted to Lua tables after XML_Parse has returned.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <lauxlib.h>
#include <lua.h>

#include "ep.h"

#define EP_XML_MAX_DEPTH 200
#define EP_XML_GUARD_MT "ecsplay.core.xml.parse"
#define NONE SIZE_MAX

struct span {
    size_t off, len;
}; /* into ctx.strs */

struct xnode {
    struct span name, text;
    size_t attr_first, nattr;
    size_t first_child, last_child, next_sibling, nchildren;
};

struct xattr {
    struct span name, value;
};

struct ep_xml_ctx {
    XML_Parser parser;
    char *strs;
    size_t strs_len, strs_cap; /* all names, values and texts */
    char *text;
    size_t text_len, text_cap; /* pending character data, stack-shaped */
    struct xnode *nodes;
    size_t nnodes, nodes_cap;
    struct xattr *attrs;
    size_t nattrs, attrs_cap;
    size_t stack[EP_XML_MAX_DEPTH];      /* open element node indices */
    size_t text_start[EP_XML_MAX_DEPTH]; /* where each open element's text starts */
    size_t depth;
    size_t root;
    int failed; /* 1 = out of memory, 2 = too deep */
};

static void ctx_free(struct ep_xml_ctx *c)
{
    if (c->parser)
        XML_ParserFree(c->parser);
    free(c->strs);
    free(c->text);
    free(c->nodes);
    free(c->attrs);
    memset(c, 0, sizeof *c);
}

static int guard_gc(lua_State *L)
{
    ctx_free(luaL_checkudata(L, 1, EP_XML_GUARD_MT));
    return 0;
}

/* Grow *p (elements of size sz) so that it holds at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / sz)
            return -1;
        n *= 2;
    }
    void *q = realloc(*p, n * sz);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int add_str(struct ep_xml_ctx *c, const char *s, size_t n, struct span *out)
{
    if (n > SIZE_MAX - c->strs_len)
        return -1;
    if (grow((void **)&c->strs, &c->strs_cap, c->strs_len + n, 1))
        return -1;
    if (n)
        memcpy(c->strs + c->strs_len, s, n);
    out->off = c->strs_len;
    out->len = n;
    c->strs_len += n;
    return 0;
}

/* Local part of a possibly prefixed name ("ns:Name" -> "Name"). */
static const char *local_name(const char *n)
{
    const char *colon = strrchr(n, ':');
    return colon && colon[1] ? colon + 1 : n;
}

static void fail(struct ep_xml_ctx *c, int why)
{
    if (!c->failed)
        c->failed = why;
    XML_StopParser(c->parser, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct ep_xml_ctx *c = ud;
    if (c->failed)
        return;
    if (c->depth >= EP_XML_MAX_DEPTH) {
        fail(c, 2);
        return;
    }
    if (grow((void **)&c->nodes, &c->nodes_cap, c->nnodes + 1, sizeof *c->nodes)) {
        fail(c, 1);
        return;
    }
    size_t idx = c->nnodes++;
    struct xnode *nd = &c->nodes[idx];
    memset(nd, 0, sizeof *nd);
    nd->first_child = nd->last_child = nd->next_sibling = NONE;
    const char *ln = local_name(name);
    if (add_str(c, ln, strlen(ln), &nd->name)) {
        fail(c, 1);
        return;
    }
    nd->attr_first = c->nattrs;
    for (size_t i = 0; atts[i] && atts[i + 1]; i += 2) {
        /* Namespace declarations are plumbing, not data. */
        if (strcmp(atts[i], "xmlns") == 0 || strncmp(atts[i], "xmlns:", 6) == 0)
            continue;
        if (grow((void **)&c->attrs, &c->attrs_cap, c->nattrs + 1, sizeof *c->attrs)) {
            fail(c, 1);
            return;
        }
        struct xattr *a = &c->attrs[c->nattrs];
        const char *an = local_name(atts[i]);
        if (add_str(c, an, strlen(an), &a->name) ||
            add_str(c, atts[i + 1], strlen(atts[i + 1]), &a->value)) {
            fail(c, 1);
            return;
        }
        c->nattrs++;
        c->nodes[idx].nattr++;
    }
    if (c->depth > 0) {
        struct xnode *parent = &c->nodes[c->stack[c->depth - 1]];
        if (parent->last_child == NONE)
            parent->first_child = idx;
        else
            c->nodes[parent->last_child].next_sibling = idx;
        parent->last_child = idx;
        parent->nchildren++;
    } else {
        c->root = idx;
    }
    c->stack[c->depth] = idx;
    c->text_start[c->depth] = c->text_len;
    c->depth++;
}

static int all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct ep_xml_ctx *c = ud;
    if (c->failed || c->depth == 0)
        return;
    c->depth--;
    struct xnode *nd = &c->nodes[c->stack[c->depth]];
    size_t start = c->text_start[c->depth];
    const char *t = c->text + start;
    size_t n = c->text_len - start;
    if (nd->nchildren > 0 && all_space(t, n))
        n = 0; /* indentation between children */
    if (add_str(c, t, n, &nd->text)) {
        fail(c, 1);
        return;
    }
    c->text_len = start; /* the parent's text continues where it was */
}

static void XMLCALL on_chars(void *ud, const XML_Char *s, int len)
{
    struct ep_xml_ctx *c = ud;
    if (c->failed || c->depth == 0 || len <= 0)
        return;
    if (grow((void **)&c->text, &c->text_cap, c->text_len + (size_t)len, 1)) {
        fail(c, 1);
        return;
    }
    memcpy(c->text + c->text_len, s, (size_t)len);
    c->text_len += (size_t)len;
}

/* Lua side: the tree is at most EP_XML_MAX_DEPTH deep, so recursion is bounded.
 * empty: the stack index of the document's one empty table, every element's attrs or
 * children when it has none (most elements are leaves without attributes: two tables
 * fewer each). */
static void push_node(lua_State *L, struct ep_xml_ctx *c, size_t idx, int empty)
{
    struct xnode *nd = &c->nodes[idx];
    luaL_checkstack(L, 6, "XML tree");
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, c->strs + nd->name.off, nd->name.len);
    lua_setfield(L, -2, "name");
    if (nd->nattr == 0) {
        lua_pushvalue(L, empty);
    } else {
        lua_createtable(L, 0, (int)(nd->nattr < INT_MAX ? nd->nattr : 0));
        for (size_t i = 0; i < nd->nattr; i++) {
            struct xattr *a = &c->attrs[nd->attr_first + i];
            lua_pushlstring(L, c->strs + a->name.off, a->name.len);
            lua_pushlstring(L, c->strs + a->value.off, a->value.len);
            lua_rawset(L, -3);
        }
    }
    lua_setfield(L, -2, "attrs");
    if (nd->first_child == NONE) {
        lua_pushvalue(L, empty);
    } else {
        lua_createtable(L, (int)(nd->nchildren < INT_MAX ? nd->nchildren : 0), 0);
        lua_Integer k = 0;
        for (size_t ch = nd->first_child; ch != NONE; ch = c->nodes[ch].next_sibling) {
            push_node(L, c, ch, empty);
            lua_rawseti(L, -2, ++k);
        }
    }
    lua_setfield(L, -2, "children");
    lua_pushlstring(L, c->strs + nd->text.off, nd->text.len);
    lua_setfield(L, -2, "text");
}

static int l_parse(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct ep_xml_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, EP_XML_GUARD_MT);
    c->parser = XML_ParserCreate(NULL);
    if (!c->parser)
        return luaL_error(L, "xml.parse: out of memory");
    XML_SetUserData(c->parser, c);
    XML_SetElementHandler(c->parser, on_start, on_end);
    XML_SetCharacterDataHandler(c->parser, on_chars);
    /* Never read external DTD subsets or external parameter entities (no handler is set
     * for external entities either, so expat cannot load anything from outside). */
    XML_SetParamEntityParsing(c->parser, XML_PARAM_ENTITY_PARSING_NEVER);

    enum XML_Status st = XML_STATUS_OK;
    size_t off = 0;
    do { /* XML_Parse takes an int length */
        size_t chunk = len - off > (size_t)INT_MAX / 2 ? (size_t)INT_MAX / 2 : len - off;
        int final = off + chunk == len;
        st = XML_Parse(c->parser, s + off, (int)chunk, final);
        off += chunk;
    } while (st == XML_STATUS_OK && off < len);

    if (st != XML_STATUS_OK || c->failed) {
        const char *msg = c->failed == 1   ? "out of memory"
                          : c->failed == 2 ? "elements nested deeper than 200 levels"
                                           : XML_ErrorString(XML_GetErrorCode(c->parser));
        unsigned long line = (unsigned long)XML_GetCurrentLineNumber(c->parser);
        unsigned long col = (unsigned long)XML_GetCurrentColumnNumber(c->parser) + 1;
        lua_pushnil(L);
        lua_pushfstring(L, "XML error at line %d, column %d: %s", (int)line, (int)col,
                        msg ? msg : "unknown error");
        ctx_free(c);
        return 2;
    }
    lua_newtable(L);                         /* the document's empty attrs / children */
    push_node(L, c, c->root, lua_gettop(L)); /* expat guarantees a root element on success */
    ctx_free(c);
    return 1;
}

static int l_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '&': luaL_addstring(&b, "&amp;"); break;
        case '<': luaL_addstring(&b, "&lt;"); break;
        case '>': luaL_addstring(&b, "&gt;"); break;
        case '"': luaL_addstring(&b, "&quot;"); break;
        case '\'': luaL_addstring(&b, "&apos;"); break;
        case '\r': luaL_addstring(&b, "&#13;"); break; /* parsers would turn a raw CR into LF */
        default:
            if (ch < 0x20 && ch != '\t' && ch != '\n') {
                char hex[8];
                snprintf(hex, sizeof hex, "0x%02x", (unsigned)ch);
                return luaL_error(L, "xml.escape: byte %s at position %d cannot appear in XML 1.0",
                                  hex, (int)(i + 1));
            }
            luaL_addchar(&b, (char)ch);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg xml_funcs[] = {
    {"parse", l_parse},
    {"escape", l_escape},
    {NULL, NULL},
};

int luaopen_ecsplay_core_xml(lua_State *L)
{
    if (luaL_newmetatable(L, EP_XML_GUARD_MT)) {
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, xml_funcs);
    return 1;
}
