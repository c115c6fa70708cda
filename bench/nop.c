/* An empty program. bench/run.sh links it against ecsplay's libraries (none, the
 * core ones, all of them) to measure what dynamic loading alone costs at start-up. */
int main(void) { return 0; }
